"""The architecture's rules, checked on the source: services import core only, never each other."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVICES = ["collector", "server", "trainer", "exporter"]
PACKAGES = {f"prefloop_{s}": REPO / "services" / s / "src" / f"prefloop_{s}" for s in SERVICES}
PACKAGES["prefloop_flows"] = REPO / "flows" / "src" / "prefloop_flows"
PACKAGES["prefloop_core"] = REPO / "libs" / "core" / "src" / "prefloop_core"
PACKAGES["prefloop_ml"] = REPO / "libs" / "ml" / "src" / "prefloop_ml"
# What each package may import of prefloop: the shared libraries, never another service.
ALLOWED = {
    "prefloop_trainer": {"prefloop_core", "prefloop_ml"},
    "prefloop_exporter": {"prefloop_core", "prefloop_ml"},
    "prefloop_ml": {"prefloop_core"},
}


def imported_packages(folder: Path) -> dict[str, set[str]]:
    """prefloop packages imported by each file under folder."""
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = {n for n in names if n.startswith("prefloop_")}
    return found


def test_every_stage_has_its_own_package_and_entry_point() -> None:
    for name, folder in PACKAGES.items():
        assert (folder / "__init__.py").is_file(), name
        pyproject = (folder.parents[1] / "pyproject.toml").read_text()
        if name not in ("prefloop_core", "prefloop_ml"):
            assert f'prefloop-{name.removeprefix("prefloop_")} = "{name}.cli:main"' in pyproject


def test_services_import_the_shared_libraries_and_nothing_of_each_other() -> None:
    for service in [*SERVICES, "flows", "ml"]:
        package = f"prefloop_{service}"
        allowed = ALLOWED.get(package, {"prefloop_core"}) | {package}
        for path, names in imported_packages(PACKAGES[package]).items():
            assert names <= allowed, f"{path} imports {names - allowed}"


def test_core_imports_no_service_and_no_torch() -> None:
    for path, names in imported_packages(PACKAGES["prefloop_core"]).items():
        assert names <= {"prefloop_core"}, path
    for path in PACKAGES["prefloop_core"].rglob("*.py"):
        assert "import torch" not in path.read_text(), path


def test_collector_and_server_declare_no_torch() -> None:
    for service in ("collector", "server"):
        text = (REPO / "services" / service / "pyproject.toml").read_text()
        deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
        assert "torch" not in deps and "transformers" not in deps, service
