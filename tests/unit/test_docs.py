"""The documentation site builds in strict mode, and its generated pages cover the code they describe."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
HOOK = ROOT / "docs" / "_hooks" / "generate.py"


def load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("aiolibp2p_docs_generate", HOOK)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs", reason="mkdocs is not installed (pip install 'aiolibp2p[docs]')")
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for page in (
        "index.html",
        "reference/configuration/index.html",
        "cli/serve/index.html",
        "examples/index.html",
    ):
        assert (tmp_path / page).is_file(), page
    html = (tmp_path / "reference/configuration/index.html").read_text()
    assert "max_connections_per_peer" in html and "dial_timeout" in html


def test_configuration_reference_covers_every_default_and_field() -> None:
    gen = load_generator()
    from aiolibp2p.host import defaults
    from aiolibp2p.host.host import Host

    page = gen.config_reference()
    for name in vars(defaults):
        if name.isupper():
            assert f"`{name}`" in page, name
    for name in Host.__init__.__code__.co_varnames[1 : Host.__init__.__code__.co_kwonlyargcount + 1]:
        assert f"`{name}`" in page, name
    for path, _ in gen.CONFIG_CLASSES:
        cls = gen._load(path)
        assert f"## `{cls.__name__}`" in page
        for f in dataclasses.fields(cls):
            assert f"| `{f.name}` |" in page, (cls.__name__, f.name)
    # the attribute docstrings come along
    assert "Seconds for a whole dial to a peer" in page


def test_cli_pages_cover_every_command_and_option() -> None:
    gen = load_generator()
    pages = gen.cli_pages()
    nav = (ROOT / "mkdocs.yml").read_text()
    for name, sp in gen.cli_commands().items():
        page = pages[f"cli/{name}.md"]
        assert f"cli/{name}.md" in nav, f"{name} is missing from the nav in mkdocs.yml"
        assert f"[`{name}`]({name}.md)" in (ROOT / "docs/cli/index.md").read_text()
        for action in sp._actions:
            for opt in action.option_strings:
                if opt not in ("-h", "--help"):
                    assert opt in page, (name, opt)
    assert "--metrics HOST:PORT" in pages["cli/serve.md"]


def test_examples_page_lists_every_example() -> None:
    page = load_generator().examples_page()
    for path in (ROOT / "examples").glob("*.py"):
        assert f"## `examples/{path.name}`" in page
