"""Structure: stages import one way, the public API and the README example work, and a
wheel built from the checkout holds every module and packaged data file."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: the glue above the stages: the command line and the pipeline (folder cli/), and
#: ``python -m psplava`` (a three-line shim that must sit in the package)
GLUE = ("psplava.cli", "psplava.__main__")
STAGES = {"train": "psplava.train", "export": "psplava.export", "sim": "psplava.sim",
          "deploy": "psplava.deploy", "cli": "psplava.cli"}
#: what each part may not import (directly or lazily inside functions): the stages import
#: one way (train <- export; sim knows neither; deploy runs files and knows no training),
#: the glue sits above them all, and the core (psplava/) knows none of them
FORBIDDEN = {
    "psplava.train": ("psplava.export", "psplava.sim", "psplava.deploy", *GLUE),
    "psplava.export": ("psplava.sim", "psplava.deploy", *GLUE),
    "psplava.sim": ("psplava.train", "psplava.export", "psplava.deploy", *GLUE),
    "psplava.deploy": ("psplava.train", *GLUE),
    "psplava.cli": (),
    "core": ("psplava.train", "psplava.export", "psplava.sim", "psplava.deploy", *GLUE),
}


def _modules():
    """(part, file) for every source file: stage folders, the glue and the core package."""
    for folder, pkg in STAGES.items():
        for f in sorted((ROOT / folder).rglob("*.py")):
            yield pkg, f
    for f in sorted((ROOT / "psplava").rglob("*.py")):
        mod = "psplava." + ".".join(f.relative_to(ROOT / "psplava").with_suffix("").parts)
        if mod not in GLUE:
            yield "core", f


def test_every_part_has_a_rule():
    assert {pkg for pkg, _ in _modules()} == set(FORBIDDEN)


def test_the_core_folder_holds_no_command():
    """The command line and the pipeline live in cli/, each stage's command in its folder."""
    core = [f.name for f in (ROOT / "psplava").glob("*.py")]
    assert not [n for n in core if n in ("cli.py", "pipeline.py") or n.endswith("_cli.py")]


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def import_edges_against_direction() -> list[str]:
    bad = []
    for part, f in _modules():
        for imp in _imports(f):
            if any(imp == x or imp.startswith(x + ".") for x in FORBIDDEN.get(part, ())):
                bad.append(f"{f.relative_to(ROOT)} ({part}) imports {imp}")
    return bad


def test_stages_import_one_way():
    assert import_edges_against_direction() == []


def test_import_check_catches_a_back_edge(tmp_path, monkeypatch):
    """The check itself fails on a back-edge (sim importing train)."""
    probe = ROOT / "sim" / "_probe_back_edge.py"
    probe.write_text("from psplava.train.model import SNN\n")
    try:
        assert any("_probe_back_edge" in b for b in import_edges_against_direction())
    finally:
        probe.unlink()


def test_public_api():
    import psplava.data as data
    import psplava.export as export
    import psplava.sim as sim
    import psplava.train as train

    for mod, names in ((train, ["train", "evaluate", "SNN", "load_checkpoint", "load_config"]),
                       (export, ["export_checkpoint", "write_netfile"]),
                       (sim, ["read_netfile", "run_fixed", "run_lava"]),
                       (data, ["make_dataset", "dataset_from_config"])):
        for name in names:
            assert name in mod.__all__ and callable(getattr(mod, name)), (mod.__name__, name)


def test_readme_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- api-example -->\s*```python\n(.*?)```", text, re.S)
    assert m, "README.md lost its API example"
    monkeypatch.chdir(tmp_path)
    exec(compile(m.group(1), "README.md", "exec"), {})


def test_wheel_holds_every_module_and_data_file(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                          "--no-build-isolation", "-q", "-w", str(tmp_path)],
                         capture_output=True, text=True)
    if out.returncode != 0 and "No module named" in out.stderr:
        pytest.skip(f"cannot build a wheel here: {out.stderr.strip()[-200:]}")
    assert out.returncode == 0, out.stderr[-800:]
    wheel = next(tmp_path.glob("psplava-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = set()
    for folder, pkg in STAGES.items():
        for f in (ROOT / folder).rglob("*.py"):
            expected.add("/".join([*pkg.split("."), *f.relative_to(ROOT / folder).parts]))
    for f in (ROOT / "psplava").rglob("*"):
        if f.is_file() and f.suffix in (".py", ".yaml") and "__pycache__" not in f.parts:
            expected.add("psplava/" + "/".join(f.relative_to(ROOT / "psplava").parts))
    missing = sorted(expected - names)
    assert not missing, f"missing from the wheel: {missing}"


def test_no_third_party_import_warnings_unless_debug():
    """lava-dl's Prophesee notice and torch's CUDA_HOME notice are swallowed at import;
    ``--debug`` lets them through (so this test sees them when they exist)."""
    cmd = [sys.executable, "-m", "psplava.cli"]
    run = ["evaluate", "/nonexistent/best.pt"]   # loads lava-dl, then refuses the path
    quiet = subprocess.run(cmd + run, capture_output=True, text=True)
    loud = subprocess.run(cmd + ["--debug"] + run, capture_output=True, text=True)
    assert quiet.returncode == 2 and "checkpoint not found" in quiet.stderr
    for noise in ("Prophesee", "CUDA_HOME"):
        assert noise not in quiet.stderr + quiet.stdout
    assert "Prophesee" in loud.stderr  # lava-dl 0.6 prints it; --debug shows it


def test_every_argument_has_help_and_version_prints():
    import argparse

    from psplava.cli import _register_stage_commands, build_parser, main

    _register_stage_commands()
    missing = []

    def walk(p, prefix):
        for a in p._actions:
            if isinstance(a, argparse._SubParsersAction):
                for name, sp in a.choices.items():
                    walk(sp, f"{prefix} {name}")
            elif a.help is None:
                missing.append(f"{prefix} {a.option_strings or a.dest}")

    walk(build_parser(), "psplava")
    assert not missing, missing
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0


def neuron_key_readers() -> list[str]:
    """Places outside the neuron modules and the file reader/writer that name a neuron
    group's file key (``vThMant``, ``tauS``, ...) or index a layer's neuron group."""
    from psplava.neurons import REGISTRY

    keys = {f.key for m in REGISTRY.values() for f in m.fields}
    allowed = ({ROOT / "psplava" / "netfile.py"} | set((ROOT / "psplava" / "neurons").glob("*.py"))
               | set((ROOT / "train" / "neurons").glob("*.py")))  # lava-dl's device_params
    bad = []
    for _, f in _modules():
        if f in allowed:
            continue
        text = f.read_text()
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Constant) and node.value in keys:
                bad.append(f"{f.relative_to(ROOT)}:{node.lineno} names {node.value!r}")
        for m in re.finditer(r"\.neuron(\[|\.get\()", text):
            bad.append(f"{f.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1} "
                       "indexes a neuron group")
    return bad


def test_no_stage_reads_a_neuron_file_key():
    """Issue 19: netfile, the exporter, the engines and the plan ask the neuron's model
    (``layer.model``, ``layer.hardware``); only the registry knows the file's keys."""
    assert neuron_key_readers() == []


def test_neuron_key_check_catches_a_reader():
    probe = ROOT / "deploy" / "_probe_key.py"
    probe.write_text("def f(layer):\n    return layer.neuron['vThMant']\n")
    try:
        found = [b for b in neuron_key_readers() if "_probe_key" in b]
        assert len(found) == 2, found
    finally:
        probe.unlink()


def _names_table() -> list[list[str]]:
    text = (ROOT / "docs" / "design.md").read_text()
    body = text.split("<!-- names table")[1].split("<!-- end names table -->")[0]
    rows = [[c.strip().strip("`") for c in line.strip().strip("|").split("|")]
            for line in body.splitlines()[1:] if line.startswith("|")]
    return rows[2:]   # past the header and the rule


def names_table_errors() -> list[str]:
    """Cells of docs/design.md's names table that the code does not hold."""
    import dataclasses
    import inspect

    from lava.proc.lif.process import LIF

    from psplava.neurons import neuron_model
    from psplava.sim.procs import process
    from psplava.train.neurons import training_neuron

    procs = {"LIF": LIF, **{n: c for n, c in vars(process).items() if inspect.isclass(c)}}
    errors = []
    rows = _names_table()
    assert len(rows) >= 9
    for concept, config, train, file, hw, lava in rows:
        cls_name, attr = train.split(".")
        if config != "-":
            _, key, name = config.split(".")
            neuron = training_neuron(key)
            if neuron.params_type.__name__ != cls_name or name != attr or \
                    name not in {f.name for f in dataclasses.fields(neuron.params_type)}:
                errors.append(f"{concept}: config {config} is not {train}")
        params = {"SRMParams": training_neuron("srm"),
                  "CubaParams": training_neuron("cuba")}[cls_name].params_type
        if not hasattr(params, attr):
            errors.append(f"{concept}: {train} does not exist")
        type_name, key = file.split("/")
        model = neuron_model(type_name)
        source = inspect.getsource(inspect.getmodule(type(model)))
        if key not in {f.key for f in model.fields} and f'"{key}"' not in source:
            errors.append(f"{concept}: file key {file} is not read by {type_name}'s model")
        hw_cls, hw_attr = hw.split(".")
        fields = {f.name for f in dataclasses.fields(_hardware_class(model))}
        if _hardware_class(model).__name__ != hw_cls or hw_attr not in fields:
            errors.append(f"{concept}: {hw} is not {type_name}'s hardware field")
        proc, arg = lava[:-1].split("(")
        if arg.startswith("hardware."):
            ok = "hardware" in inspect.signature(procs[proc].__init__).parameters and \
                arg.split(".")[1] in fields
        else:
            ok = arg in inspect.signature(procs[proc].__init__).parameters
        if not ok:
            errors.append(f"{concept}: {lava} is not a parameter of the Lava process")
    return errors


def _hardware_class(model):
    """The hardware dataclass a model's ``hardware(group)`` returns (from its module)."""
    import inspect

    mod = inspect.getmodule(type(model))
    return next(c for n, c in vars(mod).items()
                if inspect.isclass(c) and n.endswith("Hardware") and c.__module__ == mod.__name__)


def test_names_table():
    """Issue 19: docs/design.md's "One name per concept" table holds (each cell is a name
    in the code); renaming a field without the table fails here."""
    assert names_table_errors() == []


def test_names_table_check_fails_on_a_wrong_name(monkeypatch):
    rows = _names_table()
    rows[1][4] = "SRMHardware.tau_syn"
    monkeypatch.setattr(sys.modules[__name__], "_names_table", lambda: rows)
    assert any("SRMHardware.tau_syn" in e for e in names_table_errors())


#: third-party packages slow to import (torch, Lava, numba's compiler, HDF5, plotting) or
#: optional (present on some platforms or installs only)
HEAVY = ("torch", "lava", "numba", "h5py", "nir", "matplotlib", "tonic", "sklearn",
         "tensorboard", "pytorch_optimizer", "triton")
OPTIONAL = ("fcntl",)
#: functions that import light modules on purpose: the command line's, which import them
#: under the command's signal handlers (cli/__init__.py's module comment)
UNDER_SIGNAL_HANDLERS = {("cli/__init__.py", f) for f in
                         ("_register_stage_commands", "_cmd_data_info", "_cmd_data_show")}


def _module_file(mod: str) -> Path | None:
    """The source file of a psplava module (``psplava.train.x`` -> ``train/x.py``)."""
    parts = mod.split(".")
    if parts[0] != "psplava":
        return None
    base = ROOT / (parts[1] if len(parts) > 1 and parts[1] in STAGES else "psplava")
    rest = parts[2:] if len(parts) > 1 and parts[1] in STAGES else parts[1:]
    for cand in (base.joinpath(*rest).with_suffix(".py"), base.joinpath(*rest, "__init__.py")):
        if cand.is_file():
            return cand
    return None


@functools.lru_cache(maxsize=None)
def _top_level_imports(path: Path) -> frozenset[str]:
    """What a module imports when it is imported (its body, ``with``/``try``/``if`` blocks
    included; not inside functions or classes)."""
    out = set()
    todo = list(ast.parse(path.read_text()).body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, (ast.With, ast.Try, ast.If)):
            todo.extend(ast.iter_child_nodes(node))
    return frozenset(out)


@functools.lru_cache(maxsize=None)
def _loaded_one(mod: str) -> frozenset[str]:
    return frozenset(_loaded([mod]))


def _loaded(mods: list[str]) -> set[str]:
    """The :data:`HEAVY` packages that importing ``mods`` loads (psplava modules through
    their packages' ``__init__`` and their top-level imports, transitively)."""
    out, todo, seen = set(), list(mods), set()
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        seen.add(mod)
        if mod.split(".")[0] in HEAVY:
            out.add(mod.split(".")[0])
        parts = mod.split(".")
        for i in range(2, len(parts) + 1):   # a package's __init__ runs first
            f = _module_file(".".join(parts[:i]))
            if f is not None:
                todo.extend(_top_level_imports(f))
    return out


def loaded_packages(path: Path) -> set[str]:
    """The :data:`HEAVY` packages a module's top-level imports load."""
    return _loaded(list(_top_level_imports(path)))


def heavy(mod: str) -> bool:
    """Importing ``mod`` is slow (it loads a :data:`HEAVY` package) or may fail (an
    :data:`OPTIONAL` one)."""
    return mod.split(".")[0] in OPTIONAL or bool(_loaded_one(mod))


def local_import_problems() -> list[str]:
    """Function-local imports that are neither of a heavy or optional module nor explained
    by a comment (on the line, or above the run of import lines it belongs to)."""
    bad = []
    for _, f in _modules():
        lines = f.read_text().splitlines()
        top = {m.split(".")[0] for m in _top_level_imports(f)} | loaded_packages(f)
        tree = ast.parse("\n".join(lines))
        guarded = {sub.lineno for t in ast.walk(tree) if isinstance(t, ast.Try)
                   and any("ImportError" in ast.unparse(h.type or ast.Name("")) for h in t.handlers)
                   for b in t.body for sub in ast.walk(b)
                   if isinstance(sub, (ast.Import, ast.ImportFrom))}  # except ImportError
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if not isinstance(sub, (ast.Import, ast.ImportFrom)):
                    continue
                mods = [sub.module] if isinstance(sub, ast.ImportFrom) else \
                    [a.name for a in sub.names]
                if isinstance(sub, ast.ImportFrom) and _module_file(sub.module or "") and \
                        all(_module_file(f"{sub.module}.{a.name}") for a in sub.names):
                    mods = [f"{sub.module}.{a.name}" for a in sub.names]  # submodules
                where = f"{f.relative_to(ROOT)}:{sub.lineno}"
                if all(m.split(".")[0] in top for m in mods) and sub.lineno not in guarded \
                        and mods[0].split(".")[0] != "psplava" and \
                        "#" not in lines[sub.lineno - 1]:   # unless the line says why
                    bad.append(f"{where} imports {mods} inside {node.name}: the module "
                               "imports that package at the top already")
                    continue
                light_ok = (str(f.relative_to(ROOT)), node.name) in UNDER_SIGNAL_HANDLERS
                if getattr(sub, "level", 0) or not (sub.lineno in guarded or light_ok or
                                                    all(heavy(m) for m in mods)):
                    bad.append(f"{where} imports {mods} inside {node.name}: light; import "
                               "it at the top")
                    continue
                i = sub.lineno - 1          # the import's line; j: the run of imports above it
                j = i - 1
                while j >= 0 and "#" not in lines[j] and re.match(
                        r"\s*((from \S+ )?import |$)|\s+[\w, ]+\)?,?$", lines[j]):
                    j -= 1
                if "#" not in lines[i] and not (j >= 0 and "#" in lines[j] and re.match(
                        r"\s*(#|(from \S+ )?import )", lines[j])):
                    bad.append(f"{where} imports {mods} inside {node.name} without a comment")
    return sorted(set(bad))


def test_function_local_imports_are_heavy_and_explained():
    """Issue 19: a function-local import remains only where the module is heavy or
    optional (``psplava --help`` and the config checks do without torch and Lava), and a
    comment says so."""
    assert local_import_problems() == []


def test_local_import_check_catches_a_light_and_an_unexplained_import():
    probe = ROOT / "export" / "_probe_import.py"
    probe.write_text("def f():\n    import json\n    return json\n\n\n"
                     "def g():\n    import nir\n    return nir\n")
    try:
        found = [b for b in local_import_problems() if "_probe_import" in b]
        assert len(found) == 2 and "light" in found[0] + found[1] and \
            "without a comment" in found[0] + found[1], found
    finally:
        probe.unlink()


def _printed_by(code: str) -> str:
    """The last line ``code`` prints, run in a fresh interpreter (its own ``sys.modules``)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT).stdout.strip().splitlines()[-1]


def test_the_command_line_installs_its_signal_handlers_first():
    """``import psplava.cli`` (what runs before ``main`` installs its signal handlers) loads
    the standard library and psplava's smallest modules only: a signal during the rest of
    the start (numpy, yaml, the stages' commands) ends the command with one line."""
    code = ("import sys\nimport psplava.cli\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'yaml', 'torch'})"
            ", sorted(m for m in sys.modules if m.startswith('psplava.') and m not in "
            "('psplava.cli', 'psplava.argtypes', 'psplava.children', 'psplava.errors')))")
    assert _printed_by(code) == "[] []"


def test_the_command_line_starts_without_torch_or_lava():
    """``psplava --help`` (and a typo) answer in a fraction of a second: the commands'
    modules load torch, lava-dl and Lava when they run, not when they register."""
    code = ("import sys\nfrom psplava.cli import _register_stage_commands, build_parser\n"
            "_register_stage_commands(); build_parser().format_help()\n"
            "print(sorted(m for m in ('torch', 'lava', 'numba', 'h5py', 'nir', 'matplotlib')"
            " if m in sys.modules))")
    assert _printed_by(code) == "[]"
