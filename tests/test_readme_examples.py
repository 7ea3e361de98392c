"""The README's and the guides' examples work as written, in a fresh project."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]


def test_the_pytest_plugin_example_passes_in_a_fresh_project_without_settings(tmp_path):
    text = (ROOT / "docs" / "guides" / "testing.md").read_text()
    section = text[text.index("## The bundled fake server") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    conftest, test = code.split("# test_unsubscribe.py\n")
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "test_unsubscribe.py").write_text(test)
    # No pyproject, pytest.ini or asyncio_mode: pytest-asyncio's default (strict) mode, as a
    # user's new project has it (pytest-asyncio may warn about its own unset settings).
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "sendkit_async" not in result.stdout  # no warning of ours


def test_every_python_example_in_the_readme_and_the_docs_is_valid_python():
    import ast  # noqa: PLC0415

    blocks = [
        (page.name, code)
        for page in PAGES
        for code in re.findall(r"```python\n(.*?)```", page.read_text(), re.DOTALL)
    ]
    assert len(blocks) >= 10
    for name, code in blocks:  # snippets may await at the top level, as in a notebook or a REPL
        compile(code, name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT | ast.PyCF_ONLY_AST)
