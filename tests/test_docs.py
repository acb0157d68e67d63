"""The documentation cannot go stale: its samples run, its references are checked.

Conventions for code blocks in ``docs/*.md``, ``README.md`` and
``examples/*/README.md`` (see also docs/index.md, "Writing these docs"):

- ```` ```python ```` blocks of one file run in order, in one process, sharing
  one namespace (a page reads like a session). ``REDIS_URL`` points at the
  test's private redis-server, so samples get their client with
  ``get_connection()`` or ``Redis.from_url(os.environ["REDIS_URL"])`` and never
  with ``Redis()`` (that would be someone's real Redis on port 6379).
- ```` ```python file=tasks.py ```` is written to ``tasks.py`` in the page's
  working directory before anything runs: job code a worker imports.
- ```` ```sh run ```` runs in place with bash (``geventq`` on PATH, same
  environment, same directory); plain ```` ```sh ```` / ```` ```console ````
  blocks are never run, but every ``geventq`` command and option they name
  must exist (``geventq CMD --help`` is checked).
- ```` ```python no-run ```` is shown only; keep it rare.
- ``http://127.0.0.1:8000`` in a sample is replaced by a local page server the
  test starts (``/N`` serves N words), so samples never touch the network.
"""

from __future__ import annotations

import ast
import glob
import inspect
import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass

import pytest

from examples.pages import serve_pages

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOC_FILES = sorted(
    glob.glob(os.path.join(ROOT, "docs", "*.md")) + [os.path.join(ROOT, "README.md")]
    + glob.glob(os.path.join(ROOT, "examples", "*", "README.md")))
SAMPLE_SITE = "http://127.0.0.1:8000"
PYTHON_LANGS = {"python", "py"}
SHELL_LANGS = {"sh", "bash", "console", "shell"}
FENCE = re.compile(r"^([ \t]*)```([^\n`]*)\n(.*?)^\1```[ \t]*$", re.M | re.S)


@dataclass
class Block:
    path: str  # relative to ROOT
    line: int  # line of the first code line
    lang: str
    attrs: dict[str, str]
    code: str

    @property
    def runs(self) -> bool:
        if self.lang in PYTHON_LANGS:
            return "no-run" not in self.attrs and "file" not in self.attrs
        return self.lang in SHELL_LANGS and "run" in self.attrs


def parse_blocks(path: str) -> list[Block]:
    """Every fenced code block of a markdown file, with its info-string attributes."""
    with open(path) as fh:
        text = fh.read()
    blocks = []
    for match in FENCE.finditer(text):
        indent, info, code = match.group(1), match.group(2).split(), match.group(3)
        if not info:
            continue
        attrs = {}
        for token in info[1:]:
            name, _, value = token.partition("=")
            attrs[name] = value
        if indent:
            code = "\n".join(line[len(indent):] for line in code.splitlines()) + "\n"
        line = text.count("\n", 0, match.start()) + 2
        blocks.append(Block(os.path.relpath(path, ROOT), line, info[0].lower(), attrs, code))
    return blocks


def doc_id(path: str) -> str:
    return os.path.relpath(path, ROOT)


# -- the samples run -------------------------------------------------------------

RUNNER = r'''
import json, subprocess, sys
ns = {"__name__": "__main__"}
for step in json.load(open(sys.argv[1])):
    if step["kind"] == "python":
        exec(compile("\n" * (step["line"] - 1) + step["code"], step["path"], "exec"), ns)
    else:
        print(f"$ {step['code'].strip()}", flush=True)
        done = subprocess.run(step["code"], shell=True, executable="/bin/bash", timeout=40)
        if done.returncode:
            sys.exit(f"{step['path']}:{step['line']}: shell sample exited {done.returncode}")
'''


@pytest.fixture(scope="session")
def page_site():
    with serve_pages() as url:
        yield url


RUNNABLE = [p for p in DOC_FILES if any(b.runs for b in parse_blocks(p))]


@pytest.mark.parametrize("path", RUNNABLE, ids=doc_id)
def test_doc_samples_run(path, connection, redis_url, page_site, tmp_path):
    """Every runnable block of the page runs, in order, against the private Redis."""
    blocks = parse_blocks(path)
    steps = []
    for block in blocks:
        code = block.code.replace(SAMPLE_SITE, page_site)
        if block.lang in PYTHON_LANGS and "file" in block.attrs:
            target = tmp_path / block.attrs["file"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(code)
        elif block.runs:
            kind = "python" if block.lang in PYTHON_LANGS else "sh"
            steps.append({"kind": kind, "path": block.path, "line": block.line, "code": code})
    (tmp_path / "steps.json").write_text(json.dumps(steps))
    (tmp_path / "_run_samples.py").write_text(RUNNER)
    env = dict(os.environ, REDIS_URL=redis_url, PYTHONPATH=ROOT,
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    env.pop("GEVENTQ_PREFIX", None)
    done = subprocess.run([sys.executable, "_run_samples.py", "steps.json"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=55)
    print(done.stdout)  # shown by pytest -rP: compare with the comments in the page
    assert done.returncode == 0, f"samples of {doc_id(path)} failed:\n{done.stdout}\n{done.stderr}"


def test_sample_blocks_follow_the_conventions():
    """Known attributes only, no samples that would talk to a real Redis on 6379."""
    problems = []
    for path in DOC_FILES:
        for block in parse_blocks(path):
            where = f"{block.path}:{block.line}"
            allowed = {"no-run", "file"} if block.lang in PYTHON_LANGS else {"run"}
            unknown = set(block.attrs) - allowed
            if unknown:
                problems.append(f"{where}: unknown block attribute(s) {sorted(unknown)}")
            if block.lang in PYTHON_LANGS and not block.attrs.get("file", "x"):
                problems.append(f"{where}: file= needs a name")
            if block.runs or "file" in block.attrs:
                code = re.sub(r"#.*", "", block.code)  # comments may say where the default is
                if re.search(r"\bRedis\(\s*\)|localhost|127\.0\.0\.1:6379", code):
                    problems.append(f"{where}: a runnable sample must get Redis from REDIS_URL "
                                    "(get_connection()), not localhost:6379")
                if block.lang in PYTHON_LANGS:
                    try:
                        ast.parse(block.code)
                    except SyntaxError as exc:
                        problems.append(f"{where}: {exc}")
    assert not problems, "\n".join(problems)


# -- every geventq command and option the docs name exists ----------------------------

def _named_commands() -> list[tuple[str, list[str], str]]:
    """(subcommand, options, where) for each `geventq ...` in shell blocks and inline code."""
    found = []
    for path in DOC_FILES:
        rel = doc_id(path)
        with open(path) as fh:
            text = fh.read()
        lines = []
        for block in parse_blocks(path):
            if block.lang in SHELL_LANGS:
                joined = block.code.replace("\\\n", " ")
                lines += [(line, f"{rel}:{block.line}") for line in joined.splitlines()]
        prose = FENCE.sub("", text)
        lines += [(span, rel) for span in re.findall(r"`(geventq [^`]+)`", prose)]
        for line, where in lines:
            line = line.split(" #")[0]
            match = re.match(r"^\s*(?:\$\s*)?(?:[A-Z_]+=\S+\s+)*geventq((?:\s+\S+)*)", line)
            if not match:
                continue
            try:
                words = shlex.split(match.group(1))
            except ValueError:
                words = match.group(1).split()
            if not words:
                continue
            if words[0].startswith("-"):
                found.append(("", [w.split("=")[0] for w in words if w.startswith("-")], where))
                continue
            options = [w.split("=")[0] for w in words[1:] if re.match(r"^--?[a-zA-Z]", w)]
            found.append((words[0], options, where))
    return found


def test_every_geventq_command_named_in_the_docs_exists():
    from click.testing import CliRunner

    from geventq.cli import main

    named = _named_commands()
    assert any(cmd == "worker" for cmd, _, _ in named), "the docs should name geventq worker"
    runner = CliRunner()
    helps: dict[str, str] = {}
    problems = []
    for cmd, options, where in named:
        if cmd not in helps:
            result = runner.invoke(main, ([cmd] if cmd else []) + ["--help"])
            helps[cmd] = result.output if result.exit_code == 0 else ""
            if result.exit_code != 0:
                problems.append(f"{where}: `geventq {cmd} --help` exited {result.exit_code}: "
                                f"{result.output.strip()[-200:]}")
                continue
        for option in options:
            if option in ("-h", "--help", "--version") or not helps[cmd]:
                continue
            if not re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", helps[cmd]):
                problems.append(f"{where}: `geventq {cmd}` has no option {option}")
    assert not problems, "\n".join(problems)


# -- the configuration reference matches conf/settings.py ------------------------------

SETTINGS = os.path.join(ROOT, "conf", "settings.py")
CONFIG_DOC = os.path.join(ROOT, "docs", "configuration.md")


def _settings_keys() -> set[str]:
    """UPPERCASE keys of conf/settings.py, including commented-out `# KEY = ...` ones."""
    with open(SETTINGS) as fh:
        return set(re.findall(r"^(?:#\s*)?([A-Z][A-Z0-9_]*)\s*=", fh.read(), re.M))


def _documented_settings() -> dict[str, str]:
    """KEY -> default cell of each row of the tables in docs/configuration.md."""
    with open(CONFIG_DOC) as fh:
        rows = re.findall(r"^\|\s*`([A-Z][A-Z0-9_]*)`\s*\|([^|]*)\|", fh.read(), re.M)
    return {key: default.strip() for key, default in rows}


def test_configuration_doc_lists_every_key_of_conf_settings_and_no_other():
    in_settings, documented = _settings_keys(), set(_documented_settings())
    assert not in_settings - documented, \
        f"keys of conf/settings.py missing from docs/configuration.md: {sorted(in_settings - documented)}"
    assert not documented - in_settings, \
        f"keys in docs/configuration.md that conf/settings.py does not have: {sorted(documented - in_settings)}"


def test_configuration_doc_shows_the_defaults_of_conf_settings():
    namespace: dict = {}
    with open(SETTINGS) as fh:
        exec(compile(fh.read(), SETTINGS, "exec"), namespace)
    documented = _documented_settings()
    wrong = []
    for key, value in namespace.items():
        if key.isupper() and key in documented and documented[key] != f"`{value!r}`":
            wrong.append(f"{key}: conf/settings.py has {value!r}, the doc says {documented[key]}")
    assert not wrong, "\n".join(wrong)


def test_conf_settings_lists_every_key_the_worker_reads():
    from geventq.cli.options import SETTING_DEFAULTS

    missing = set(SETTING_DEFAULTS) - _settings_keys()
    assert not missing, f"keys geventq reads that conf/settings.py does not document: {sorted(missing)}"


# -- the data model names every key, field and script --------------------------------

DATA_MODEL = os.path.join(ROOT, "docs", "data-model.md")


def test_data_model_documents_every_key_with_its_real_name():
    from geventq.keys import Keys

    with open(DATA_MODEL) as fh:
        text = fh.read()
    keys = Keys()
    problems = []
    for name, member in inspect.getmembers(Keys):
        if name.startswith("_") or name == "prefix":
            continue
        if not re.search(rf"`{name}[`(]", text):
            problems.append(f"Keys.{name} is not mentioned (as `{name}` or `{name}(...)`)")
        if name == "parse_worker_key":
            continue
        if isinstance(member, property):
            rendered = getattr(keys, name)
        else:
            params = list(inspect.signature(member).parameters)[1:]
            rendered = getattr(keys, name)(*(f"<{p}>" for p in params))
        if f"`{rendered}`" not in text:
            problems.append(f"Keys.{name}: the key `{rendered}` is not in the doc")
    assert not problems, "\n".join(problems)


def test_data_model_documents_every_job_field_and_lua_script():
    from geventq.job_fields import KNOWN_FIELDS as _KNOWN_FIELDS

    with open(DATA_MODEL) as fh:
        text = fh.read()
    missing = [f for f in sorted(_KNOWN_FIELDS) if f"`{f}`" not in text]
    assert not missing, f"job hash fields not in docs/data-model.md: {missing}"
    scripts = [os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "geventq", "lua", "*.lua"))]
    missing = [s for s in sorted(scripts) if s not in text]
    assert not missing, f"Lua scripts not in docs/data-model.md: {missing}"


def test_docs_index_links_every_page():
    with open(os.path.join(ROOT, "docs", "index.md")) as fh:
        index = fh.read()
    pages = [os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "docs", "*.md"))]
    missing = [p for p in sorted(pages) if p != "index.md" and f"({p})" not in index]
    assert not missing, f"docs/index.md does not link {missing}"


def test_relative_links_in_the_docs_resolve():
    broken = []
    for path in DOC_FILES:
        with open(path) as fh:
            text = FENCE.sub("", fh.read())
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not os.path.exists(os.path.join(os.path.dirname(path), target)):
                broken.append(f"{doc_id(path)}: {target}")
    assert not broken, "broken links:\n" + "\n".join(broken)
