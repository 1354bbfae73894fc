"""The README and the manual in docs/ say only what works.

Every relative link and anchor resolves, the README stays a front door (at most 300 lines), every
``pyinfer`` command shown in a code block parses with the real argument parser, every extra named
in an install command exists, and the README's Python quick start runs word for word on a tiny
model made here. Nothing here runs a real model or the command line itself.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

#: The README is the front door; the manual lives in docs/.
README_MAX_LINES = 300

FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
INLINE_CODE = re.compile(r"(`+)(?:(?!\1).)+?\1")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def _blocks(text: str) -> list[tuple[str, str]]:
    """The fenced code blocks of a Markdown text, as (language, code)."""
    blocks: list[tuple[str, str]] = []
    fence: str | None = None
    language = ""
    lines: list[str] = []
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence, language, lines = match.group(1), match.group(2).lower(), []
        elif fence is not None and line.strip().startswith(fence[0] * len(fence)):
            if not line.strip().strip(fence[0]):
                blocks.append((language, "\n".join(lines) + "\n"))
                fence = None
        elif fence is not None:
            lines.append(line)
    assert fence is None, "a code block is not closed"
    return blocks


def _prose(text: str) -> list[str]:
    """The lines of a Markdown text outside fenced code blocks."""
    lines: list[str] = []
    fence: str | None = None
    for line in text.splitlines():
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and line.strip().startswith(fence):
            fence = None
        elif fence is None:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to dashes."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a Markdown file's headings define (repeats numbered as GitHub does)."""
    seen: dict[str, int] = {}
    result: set[str] = set()
    for line in _prose(path.read_text(encoding="utf-8")):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(path: Path) -> list[str]:
    """The targets of the Markdown links in a file's prose (code spans and blocks excluded)."""
    targets: list[str] = []
    for line in _prose(path.read_text(encoding="utf-8")):
        targets += LINK.findall(INLINE_CODE.sub("", line))
    return targets


def test_slug_follows_githubs_rules() -> None:
    assert slug("Hardening: what was tried and what held") == (
        "hardening-what-was-tried-and-what-held"
    )
    assert slug("Which format should I deploy: `pyinfer formats`") == (
        "which-format-should-i-deploy-pyinfer-formats"
    )
    assert slug("From C++") == "from-c"
    assert slug("Resources: memory limits, file handles and threads") == (
        "resources-memory-limits-file-handles-and-threads"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken: list[str] = []
    for target in links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto: ...: not checked offline
            continue
        file_part, _, anchor = target.partition("#")
        resolved = (page.parent / file_part).resolve() if file_part else page
        if not resolved.exists():
            broken.append(f"{target}: {resolved} does not exist")
            continue
        if anchor:
            if resolved.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(resolved):
                broken.append(f"{target}: no heading '#{anchor}' in {resolved.name}")
    assert not broken, f"{page.name}: broken links:\n" + "\n".join(broken)


def test_the_readme_and_the_manual_link_to_each_other() -> None:
    readme_links = {target.partition("#")[0] for target in links(README)}
    index_links = {target.partition("#")[0] for target in links(ROOT / "docs" / "README.md")}
    for page in DOCS:
        if page.name != "README.md":
            assert page.name in index_links, f"docs/README.md does not list {page.name}"
            assert f"docs/{page.name}" in readme_links, f"README.md does not link {page.name}"


def test_the_readme_is_a_front_door() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_docs_name_requirements_not_the_specification(page: Path) -> None:
    assert "the specification" not in page.read_text(encoding="utf-8").lower()


def _commands(path: Path) -> list[str]:
    """The ``pyinfer ...`` commands in a file's shell code blocks (``$ `` prompts allowed)."""
    commands: list[str] = []
    for language, code in _blocks(path.read_text(encoding="utf-8")):
        if language not in {"", "bash", "sh", "shell", "console"}:
            continue
        prompted = language in {"", "console"}  # output shown: only `$ ` lines are commands
        for raw in code.splitlines():
            line = raw.strip()
            if prompted and not line.startswith("$ "):
                continue
            try:
                words = shlex.split(line.removeprefix("$ "), comments=True)
            except ValueError:  # not shell (an output line with an odd quote)
                continue
            command: list[str] = []
            for word in [*words, "&&"]:
                if word in {"&&", "||", ";", "|"}:
                    if command and command[0] == "pyinfer":
                        commands.append(shlex.join(command))
                    command = []
                else:
                    command.append(word)
    return commands


def _parse(command: str) -> None:
    from pyinfer import cli

    argv = shlex.split(command)[1:]
    assert not {"--help", "-h", "--version"} & set(argv), f"{command!r} would only print help"
    try:
        args = cli.build_parser().parse_args(argv)
    except SystemExit as exit_:
        pytest.fail(f"{command!r} does not parse (exit status {exit_.code})")
    assert args.command is not None, command


README_COMMANDS = _commands(README)


def test_the_readme_shows_the_quick_start_commands() -> None:
    assert "pyinfer profile model.onnx" in README_COMMANDS
    assert "pyinfer bench --quick" in README_COMMANDS
    assert "pyinfer demo" in README_COMMANDS


@pytest.mark.parametrize("command", README_COMMANDS)
def test_every_command_in_the_readme_parses(command: str) -> None:
    _parse(command)


@pytest.mark.parametrize(
    "command",
    sorted({(page.name, c) for page in DOCS for c in _commands(page)}),
    ids=lambda item: f"{item[0]}: {item[1]}",
)
def test_every_command_in_the_manual_parses(command: tuple[str, str]) -> None:
    _parse(command[1])


def test_the_readmes_two_commands_are_what_ci_runs() -> None:
    shell = [code for language, code in _blocks(README.read_text("utf-8")) if language == "bash"]
    setup = 'python3 -m venv .venv && . .venv/bin/activate && pip install ".[all]" && pyinfer demo'
    assert any(code.strip() == setup for code in shell), "the set-up command is not in README.md"
    assert any(code.strip() == 'pip install ".[dev]" && python -m pytest' for code in shell)
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "\npython -m pytest\n" in ci, ".ci/run no longer runs the README's test command"


def test_every_extra_in_an_install_command_exists() -> None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = set(pyproject["project"]["optional-dependencies"])
    # ".[all,dev]", "pyinfer-toolkit[plot]"
    install = re.compile(r"""(?:pyinfer-toolkit|\.)\[([\w,-]+)\]["'`]""")
    named: set[str] = set()
    for page in PAGES:
        for extra_list in install.findall(page.read_text("utf-8")):
            named.update(extra_list.split(","))
    assert named, "no install command found"
    assert named <= extras, f"extras named in the docs but not in pyproject.toml: {named - extras}"


def test_the_readmes_formats_table_is_the_registry() -> None:
    """One row per registered format, in the registry's order, naming the format's extra."""
    from pyinfer.formats import FORMATS

    text = README.read_text(encoding="utf-8")
    section = text.split("\n## Formats\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    rows = rows[1:]  # the header
    assert len(rows) == len(FORMATS)
    for row, info in zip(rows, FORMATS, strict=True):
        extras = row.rstrip(" |").rsplit("|", 1)[1]
        assert f"`{info.extra}`" in extras, (info.name, row)


def _tiny_onnx(onnx: ModuleType, path: Path) -> None:
    """A two-layer MLP (16 -> 32 -> 4) with a dynamic batch, saved as ONNX."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def test_the_readmes_python_quick_start_runs_word_for_word(
    onnx_module: ModuleType,
    onnxruntime_module: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocks = [code for language, code in _blocks(README.read_text("utf-8")) if language == "python"]
    assert blocks, "README.md shows no Python"
    _tiny_onnx(onnx_module, tmp_path / "model.onnx")
    monkeypatch.chdir(tmp_path)
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    printed = capsys.readouterr().out
    assert "Profiling Results:" in printed
    assert "Batch Size" in printed
    assert (tmp_path / "report.json").is_file()
