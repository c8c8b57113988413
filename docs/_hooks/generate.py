"""MkDocs hook: generate the pages that must never drift from the code.

* ``reference/configuration.md`` from :mod:`aiolibp2p.host.defaults`, the ``new_host`` options
  (:class:`aiolibp2p.Host` signature) and the config dataclasses, with their attribute docstrings;
* ``cli/<command>.md`` for every subcommand of :func:`aiolibp2p.cli.main.build_parser`;
* ``examples.md`` from the scripts in ``examples/`` (their docstrings and source).

Run directly (``python docs/_hooks/generate.py OUTDIR``) to write the pages without building the site.
"""

from __future__ import annotations

import argparse
import ast
import dataclasses
import importlib
import inspect
import itertools
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# (import path, why it is configured) — every dataclass a user passes to new_host or a service.
CONFIG_CLASSES: list[tuple[str, str]] = [
    (
        "aiolibp2p.network.swarm.SwarmConfig",
        "``new_host(swarm_config=SwarmConfig(...))``: dialing and streams",
    ),
    ("aiolibp2p.network.upgrader.UpgraderConfig", "``new_host(upgrader_config=...)``: connection upgrades"),
    ("aiolibp2p.network.resources.ResourceLimits", "``new_host(resource_limits=...)``: the resource manager"),
    ("aiolibp2p.network.connmgr.ConnManagerConfig", "``new_host(conn_manager=...)``: the connection manager"),
    ("aiolibp2p.dns.DnsConfig", "``new_host(dns=DnsConfig(...))``: ``/dnsaddr`` and ``/dns*`` resolution"),
    (
        "aiolibp2p.muxers.yamux.engine.YamuxConfig",
        "``YamuxMuxer(YamuxConfig(...))`` in ``new_host(muxers=[...])``",
    ),
    (
        "aiolibp2p.transports.quic.config.QuicConfig",
        "``QuicTransport(key, QuicConfig(...))`` in ``new_host(transports=[...])``",
    ),
    (
        "aiolibp2p.transports.webrtc.config.WebRtcDirectConfig",
        "``WebRtcDirectTransport(key, WebRtcDirectConfig(...))`` in ``new_host(transports=[...])``",
    ),
]
OPTIONAL_CONFIG_CLASSES: list[tuple[str, str]] = [
    ("aiolibp2p.pubsub.core.PubSubConfig", "``gossipsub(host, **options)`` / ``floodsub(host, **options)``"),
    ("aiolibp2p.pubsub.gossipsub.GossipSubConfig", "``gossipsub(host, **options)``"),
]


def _load(path: str) -> Any:
    mod, _, name = path.rpartition(".")
    return getattr(importlib.import_module(mod), name)


def attribute_docs(source: str, class_name: str | None = None) -> dict[str, str]:
    """Docstrings written under assignments (``x = 1`` then ``\"\"\"doc\"\"\"``), in a module or a class body."""
    tree = ast.parse(source)
    body: list[ast.stmt] = tree.body
    if class_name is not None:
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == class_name:
                body = node.body
                break
    docs: dict[str, str] = {}
    for a, b in itertools.pairwise(body):
        target = None
        if isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name):
            target = a.target.id
        elif isinstance(a, ast.Assign) and len(a.targets) == 1 and isinstance(a.targets[0], ast.Name):
            target = a.targets[0].id
        if (
            target
            and isinstance(b, ast.Expr)
            and isinstance(b.value, ast.Constant)
            and isinstance(b.value.value, str)
        ):
            docs[target] = " ".join(inspect.cleandoc(b.value.value).split())
    return docs


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _fmt_default(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 20 and value % 1024 == 0:
        for unit, shift in (("GiB", 30), ("MiB", 20)):
            if value % (1 << shift) == 0:
                return f"{value} ({value >> shift} {unit})"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}()"
    return repr(value)


def dataclass_table(cls: type) -> str:
    docs = attribute_docs(inspect.getsource(inspect.getmodule(cls)), cls.__name__)  # type: ignore[arg-type]
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f"`{_fmt_default(f.default)}`"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"`{_fmt_default(f.default_factory())}` (computed here)"
        else:
            default = "required"
        ftype = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        rows.append(f"| `{f.name}` | `{_cell(ftype)}` | {_cell(default)} | {_cell(docs.get(f.name, ''))} |")
    return "\n".join(rows)


def config_reference() -> str:
    from aiolibp2p.host import defaults
    from aiolibp2p.host.host import Host

    out = [
        "# Configuration reference",
        "",
        "<!-- generated by docs/_hooks/generate.py from the code: do not edit -->",
        "",
        "Every setting has a default; `new_host(**options)` takes what it is not given from",
        "`aiolibp2p.host.defaults`. This page is generated from that module, the `Host` signature and the",
        "configuration dataclasses when the site is built, so it always matches the installed code.",
        "Values marked *computed here* depend on the machine that built the page.",
        "",
        "## `new_host` options",
        "",
        "| option | default |",
        "|---|---|",
    ]
    for name, p in inspect.signature(Host.__init__).parameters.items():
        if name == "self":
            continue
        default = "`None` (see below)" if p.default is None else f"`{_fmt_default(p.default)}`"
        out.append(f"| `{name}` | {_cell(default)} |")
    out += [
        "",
        "`None` means: use the module default below (`listen` → `DEFAULT_LISTEN_ADDRS`, `transports` →",
        "`DEFAULT_TRANSPORTS`, `security` → `DEFAULT_SECURITY`, `muxers` → `DEFAULT_MUXERS`, `swarm_config` →",
        "`SWARM`, `upgrader_config` → `UPGRADER`, `resource_limits` → `RESOURCE_LIMITS`, `conn_manager` →",
        "`CONN_MANAGER`, `dns` → `DNS`; `key` → a fresh Ed25519 key; `gater` → allow everything).",
        "",
        "## `aiolibp2p.host.defaults`",
        "",
        "| name | value | meaning |",
        "|---|---|---|",
    ]
    docs = attribute_docs(inspect.getsource(defaults))
    for name in sorted(vars(defaults)):
        if not name.isupper():
            continue
        out.append(
            f"| `{name}` | `{_cell(_fmt_default(getattr(defaults, name)))}` | {_cell(docs.get(name, ''))} |"
        )
    classes = list(CONFIG_CLASSES)
    for path, use in OPTIONAL_CONFIG_CLASSES:
        try:
            _load(path)
        except (ImportError, AttributeError):
            continue
        classes.append((path, use))
    for path, use in classes:
        cls = _load(path)
        doc = inspect.cleandoc(cls.__doc__ or "")
        out += ["", f"## `{cls.__name__}`", "", f"`{path}` — {use}.", ""]
        if doc and not doc.startswith(f"{cls.__name__}("):
            out += [doc, ""]
        out.append(dataclass_table(cls))
    return "\n".join(out) + "\n"


# -- CLI --------------------------------------------------------------------------------------------------------
def cli_commands() -> dict[str, argparse.ArgumentParser]:
    from aiolibp2p.cli.main import build_parser

    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise RuntimeError("the aiolibp2p parser has no subcommands")


def _cli_help() -> dict[str, str]:
    from aiolibp2p.cli.main import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def cli_page(name: str, sp: argparse.ArgumentParser, summary: str) -> str:
    sp.prog = f"aiolibp2p {name}"
    rows = ["| argument | default | meaning |", "|---|---|---|"]
    for a in sp._actions:
        if isinstance(a, argparse._HelpAction):
            continue
        flag = ", ".join(a.option_strings) if a.option_strings else a.dest.upper()
        if a.choices:
            flag += " {" + ",".join(map(str, a.choices)) + "}"
        elif a.option_strings and a.nargs != 0 and a.metavar:
            flag += f" {a.metavar}"
        default = "" if a.default in (None, False) else f"`{a.default}`"
        repeatable = isinstance(a, argparse._AppendAction) and "repeatable" not in (a.help or "")
        extra = " (repeatable)" if repeatable else ""
        rows.append(f"| `{_cell(flag)}` | {default} | {_cell((a.help or '') + extra)} |")
    return "\n".join(
        [
            f"# `aiolibp2p {name}`",
            "",
            "<!-- generated by docs/_hooks/generate.py from aiolibp2p.cli.main.build_parser: do not edit -->",
            "",
            summary[:1].upper() + summary[1:] + ".",
            "",
            "```text",
            sp.format_usage().strip(),
            "```",
            "",
            *rows,
            "",
            "Global options go before the command: `aiolibp2p --log-level DEBUG --log-format json "
            f"{name} ...` (see [the command line](index.md)).",
            "",
        ]
    )


def cli_pages() -> dict[str, str]:
    helps = _cli_help()
    return {f"cli/{n}.md": cli_page(n, sp, helps.get(n, "")) for n, sp in cli_commands().items()}


# -- examples ---------------------------------------------------------------------------------------------------
def examples_page() -> str:
    out = [
        "# Examples",
        "",
        "<!-- generated by docs/_hooks/generate.py from examples/*.py: do not edit -->",
        "",
        "Each script in `examples/` is complete and runnable, and `tests/integration/test_examples.py` runs",
        "every one of them (as subprocesses, on loopback) so they keep working.",
    ]
    for path in sorted((ROOT / "examples").glob("*.py")):
        src = path.read_text()
        doc = ast.get_docstring(ast.parse(src)) or ""
        first, _, rest = doc.partition("\n")
        out += [
            "",
            f"## `examples/{path.name}`",
            "",
            first,
            "",
            textwrap.dedent(rest).strip(),
            "",
            "Source:",
            "",
            "```python",
            src.rstrip(),
            "```",
        ]
    return "\n".join(out) + "\n"


def generated_pages() -> dict[str, str]:
    pages = {"reference/configuration.md": config_reference(), "examples.md": examples_page()}
    pages.update(cli_pages())
    return pages


# -- the MkDocs hook ----------------------------------------------------------------------------------------------
def on_files(files: Any, config: Any) -> Any:
    from mkdocs.structure.files import File

    for uri, content in generated_pages().items():
        existing = files.get_file_from_path(uri)
        if existing is not None:
            files.remove(existing)
        files.append(File.generated(config, uri, content=content))
    return files


if __name__ == "__main__":
    outdir = Path(sys.argv[1] if len(sys.argv) > 1 else "docs-generated")
    for uri, content in generated_pages().items():
        target = outdir / uri
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
        print(target)
