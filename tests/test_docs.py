"""The user's documents stay true: the README is short, every link leads somewhere, and every module the
architecture page names exists."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]
PACKAGES = {
    "prefloop_core": "libs/core/src",
    "prefloop_ml": "libs/ml/src",
    "prefloop_flows": "flows/src",
    **{f"prefloop_{s}": f"services/{s}/src" for s in ("collector", "server", "trainer", "exporter")},
}
SOURCES = [p.relative_to(ROOT).as_posix() for p in ROOT.glob("**/*.py") if ".venvs" not in p.parts]
LLAMA_CPP_TOOLS = {"convert_hf_to_gguf.py", "convert_lora_to_gguf.py"}  # llama.cpp's own, not this tree's


def test_the_readme_is_read_in_ten_minutes() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


def test_every_relative_link_leads_to_a_file() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", doc.read_text()):
            if not re.match(r"^[a-z]+:", target) and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []


def _dotted_exists(name: str) -> bool:
    """`prefloop_x.a.b[.attribute]`: a module (or package) of that path, or an attribute defined in one."""
    parts = name.split(".")
    base = ROOT / PACKAGES[parts[0]]
    for cut in range(len(parts), 0, -1):
        path = base.joinpath(*parts[:cut])
        module = path.with_suffix(".py") if not path.is_dir() else path / "__init__.py"
        if module.is_file():
            rest = parts[cut:]
            if not rest:
                return True
            return (
                len(rest) == 1
                and re.search(rf"^\s*(def|class|async def)\s+{rest[0]}\b|^{rest[0]}\s*[:=]", module.read_text(), re.M) is not None
            )
    return False


def test_every_module_the_architecture_page_names_exists() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    dotted = set(re.findall(r"\b(prefloop_(?:core|ml|flows|collector|server|trainer|exporter)(?:\.\w+)+)", text))
    files = set(re.findall(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.py)\b", text))
    missing = sorted(n for n in dotted if not _dotted_exists(n))
    missing += sorted(f for f in files - LLAMA_CPP_TOOLS if not any(s == f or s.endswith("/" + f) for s in SOURCES))
    assert missing == [], "docs/architecture.md names what the tree does not have"
