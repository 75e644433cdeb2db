"""Build the code package of the Lambda functions (infra/README.md). Standard library only.

    python infra/package.py stage DIR   # the project: kernel/, plugins/, niaga-*.dist-info
    python infra/package.py prune DIR [--locales de,en,id,ja] [--drop-boto3]
    python infra/package.py build DIR [--locales ...] [--drop-boto3] [--for-lambda]

``build`` is the whole package, on any machine: ``pip install --target DIR -r
infra/requirements.txt`` (this machine's wheels; ``--for-lambda``: CPython 3.12 arm64
ones, as the functions run), ``stage``, ``prune``. ``make deploy`` runs ``stage`` before
``sam build`` (which installs the requirements in the Lambda build image) and ``prune``
on each function folder ``sam build`` made.

``stage`` is ``pip install --no-deps --target DIR`` of the project, built from a clean copy
of its sources (setuptools reuses a ``build/lib`` left in the source tree, stale files
included). The ``niaga-*.dist-info`` it writes carries ``entry_points.txt``: plugins are
found through the ``niaga`` entry-point group, so copying ``kernel/`` and ``plugins/``
alone gives functions that cannot start (no plugin of any name is installed).

``prune`` shrinks an installed function folder (after ``sam build``:
``.aws-sam/build/<Function>/``; after ``build``: DIR):

* Babel's locale data (``babel/locale-data/*.dat``, one file per CLDR locale) down to the
  kept languages: ``--locales``, else ``$NIAGA_LOCALES``, else the languages of the
  locales in the demo markets file (kernel/data/markets.toml); ``en`` always. A kept
  language keeps all its regional variants (``de_AT.dat``), ``root.dat`` and the parents
  Babel merges each file with (CLDR's parent exceptions: ``nb`` needs ``no``);
* distributions Litestar declares but the functions never import (``UNUSED``: its CLI,
  rich, pygments, click; polyfactory + faker, only used for OpenAPI examples, off here);
* with ``--drop-boto3``, boto3 and its dependencies (``RUNTIME_PROVIDED``), which the
  Lambda Python runtime has; by default they are kept (infra/README.md says why);
* ``__pycache__`` folders, ``*.pyi`` stubs, ``tests`` folders inside packages and ``bin/``
  (console scripts pip writes; nothing on Lambda runs them).

tests/aws/test_package.py builds the package, checks its size and serves requests from it
in an interpreter that sees only the package and the standard library.
"""

from __future__ import annotations

import argparse
import csv
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "infra" / "requirements.txt"
DEMO_MARKETS = ROOT / "kernel" / "data" / "markets.toml"
# what the wheel is built from (pyproject.toml: readme, package find, package data)
SOURCES = ("pyproject.toml", "README.md", "kernel", "plugins")
ALWAYS_KEPT = ("en",)
MB = 1024 * 1024
# the functions' runtime (template.yaml: python3.12, arm64), for `build --for-lambda`
LAMBDA_PLATFORM = ("--platform", "manylinux2014_aarch64", "--implementation", "cp",
                   "--python-version", "3.12", "--only-binary=:all:")

# Distribution -> the top-level names it installs. Litestar requires these, but the
# functions never import them (tests/aws/test_package.py records every import attempt of
# these names while serving requests from the pruned package; there are none):
# rich-click/click/rich(/pygments/markdown-it-py/mdurl) only for litestar.cli;
# polyfactory(/faker) only for OpenAPI examples (OpenAPIConfig.create_examples, off).
# PyYAML stays: litestar.openapi.plugins imports it at module level.
UNUSED = {
    "faker": ("faker",),
    "polyfactory": ("polyfactory",),
    "pygments": ("pygments",),
    "rich": ("rich",),
    "rich-click": ("rich_click",),
    "click": ("click",),
    "markdown-it-py": ("markdown_it",),
    "mdurl": ("mdurl",),
}
# boto3 and what it pulls in: all of it ships with the Lambda Python runtime.
RUNTIME_PROVIDED = {
    "boto3": ("boto3",),
    "botocore": ("botocore",),
    "s3transfer": ("s3transfer",),
    "jmespath": ("jmespath",),
    "python-dateutil": ("dateutil",),
    "six": ("six",),
    "urllib3": ("urllib3",),
}


def say(text: str) -> None:
    print(f"[package] {text}", flush=True)


def size_of(path: Path) -> int:
    """Bytes in regular files under ``path`` (the unzipped size; links not followed)."""
    if path.is_symlink() or path.is_file():
        return path.lstat().st_size if path.is_file() else 0
    total = 0
    for dirpath, _, files in os.walk(path):
        for name in files:
            entry = Path(dirpath, name)
            if entry.is_file() and not entry.is_symlink():
                total += entry.lstat().st_size
    return total


def mb(n: int) -> str:
    return f"{n / MB:.1f} MB" if n >= MB // 10 else f"{n / 1024:.0f} KB"


def remove(path: Path) -> int:
    """Delete a file or folder; the bytes it held."""
    freed = size_of(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    return freed


def pip(*args: str) -> None:
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check",
           "--no-compile", *args]
    say("$ " + " ".join(cmd[2:]))
    subprocess.run(cmd, check=True)


# -- stage ------------------------------------------------------------------------------------

def stage(target: Path) -> None:
    """``pip install --no-deps --target`` of the project, from a clean copy of its sources."""
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="niaga-stage-") as tmp:
        src = Path(tmp) / "niaga"
        src.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        for name in [*SOURCES, *(p.name for p in ROOT.glob("LICEN[CS]E*"))]:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=ignore)
            else:
                shutil.copy2(path, src / name)
        pip("--no-deps", "--upgrade", "--target", str(target), str(src))
    dist = sorted(target.glob("niaga-*.dist-info"))
    entry_points = dist[-1] / "entry_points.txt" if dist else None
    if entry_points is None or "[niaga]" not in entry_points.read_text(encoding="utf-8"):
        raise SystemExit(f"stage: no niaga-*.dist-info/entry_points.txt with [niaga] in {target}")
    say(f"staged kernel/, plugins/ and {dist[-1].name} in {target} ({mb(size_of(target))})")


# -- prune ------------------------------------------------------------------------------------

def languages(option: str | None) -> list[str]:
    """The kept languages: the option, else $NIAGA_LOCALES, else the demo markets' (+ en)."""
    text = option if option is not None else os.environ.get("NIAGA_LOCALES", "")
    tags = [t.strip() for t in text.split(",") if t.strip()]
    if not tags:
        import tomllib

        markets = tomllib.loads(DEMO_MARKETS.read_text(encoding="utf-8"))["markets"]
        tags = [tag for market in markets.values() for tag in market.get("locales", [])]
    langs = {re.split(r"[-_]", tag)[0].lower() for tag in tags} | set(ALWAYS_KEPT)
    return sorted(langs)


def _parent(name: str, exceptions: dict[str, str]) -> str | None:
    """The locale Babel merges ``name`` with (babel.localedata.load), None for root."""
    if name == "root":
        return None
    if name in exceptions:
        return exceptions[name]
    return name.rsplit("_", 1)[0] if "_" in name else "root"


def prune_locales(target: Path, langs: list[str]) -> int:
    data = target / "babel" / "locale-data"
    if not data.is_dir():
        say("babel/locale-data not found: no locale data pruned")
        return 0
    exceptions: dict[str, str] = {}
    global_data = target / "babel" / "global.dat"  # a pickled dict: babel.core.get_global
    if global_data.is_file():
        with open(global_data, "rb") as f:
            exceptions = pickle.load(f).get("parent_exceptions", {})
    present = {p.stem for p in data.glob("*.dat")}
    keep = {n for n in present if n == "root" or n.split("_")[0] in langs}
    for name in list(keep):  # and every file on each kept locale's parent chain
        parent = _parent(name, exceptions)
        while parent is not None and parent in present:
            keep.add(parent)
            parent = _parent(parent, exceptions)
    extra = sorted(n for n in keep if n != "root" and n.split("_")[0] not in langs)
    freed = sum(remove(data / f"{n}.dat") for n in sorted(present - keep))
    say(f"babel locale data: kept {len(keep)} of {len(present)} files (languages "
        f"{', '.join(langs)}{'; parents ' + ', '.join(extra) if extra else ''}), "
        f"removed {mb(freed)}")
    return freed


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def remove_distribution(target: Path, dist: str, top_level: tuple[str, ...]) -> int:
    """A distribution's files (its RECORD, inside ``target`` only), its dist-info and its
    top-level names."""
    infos = [p for p in target.glob("*.dist-info")
             if _norm(p.name[: -len(".dist-info")].rsplit("-", 1)[0]) == _norm(dist)]
    freed = 0
    root = target.resolve()
    emptied: set[Path] = set()
    for info in infos:
        record = info / "RECORD"
        if record.is_file():
            with open(record, newline="", encoding="utf-8") as f:
                for row in csv.reader(f):
                    path = (target / row[0]).resolve() if row else None
                    if path and path.is_relative_to(root) and path.is_file():
                        freed += remove(path)
                        emptied.add(path.parent)
        freed += remove(info)
    for name in top_level:
        for path in (target / name, target / f"{name}.py"):
            if path.exists():
                freed += remove(path)
    for folder in sorted(emptied, key=lambda p: len(p.parts), reverse=True):
        while folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # left empty by the RECORD's files
            folder = folder.parent
    return freed


def remove_distributions(target: Path, dists: dict[str, tuple[str, ...]], label: str) -> int:
    freed: dict[str, int] = {}
    for dist, top_level in dists.items():
        n = remove_distribution(target, dist, top_level)
        if n:
            freed[dist] = n
    listed = ", ".join(f"{d} {mb(n)}" for d, n in sorted(freed.items(), key=lambda kv: -kv[1]))
    say(f"{label}: removed {mb(sum(freed.values()))} ({listed or 'none installed'})")
    return sum(freed.values())


def remove_clutter(target: Path) -> int:
    """``__pycache__``, ``*.pyi``, ``tests`` folders inside packages, ``bin/``."""
    freed = {"__pycache__": 0, "*.pyi": 0, "tests folders": 0, "bin/": 0}
    if (target / "bin").is_dir():
        freed["bin/"] += remove(target / "bin")
    for dirpath, dirnames, filenames in os.walk(target):
        here = Path(dirpath)
        for name in list(dirnames):
            if name == "__pycache__":
                freed["__pycache__"] += remove(here / name)
                dirnames.remove(name)
            elif name == "tests" and here != target and (here / "__init__.py").exists():
                freed["tests folders"] += remove(here / name)
                dirnames.remove(name)
        for name in filenames:
            if name.endswith(".pyi"):
                freed["*.pyi"] += remove(here / name)
    say("clutter: removed " + ", ".join(f"{k} {mb(v)}" for k, v in freed.items()))
    return sum(freed.values())


def prune(target: Path, locales: str | None = None, drop_boto3: bool = False) -> dict[str, int]:
    if not (target / "kernel").is_dir():
        raise SystemExit(f"prune: {target} has no kernel/ (not a function folder?)")
    before = size_of(target)
    say(f"pruning {target}: {mb(before)}")
    removed = {"locale data": prune_locales(target, languages(locales)),
               "unused distributions": remove_distributions(target, UNUSED,
                                                            "unused by the functions")}
    if drop_boto3:
        removed["boto3 and deps"] = remove_distributions(
            target, RUNTIME_PROVIDED, "provided by the Lambda runtime (--drop-boto3)")
    removed["clutter"] = remove_clutter(target)
    after = size_of(target)
    say(f"{target}: {mb(before)} -> {mb(after)} unzipped (removed {mb(before - after)})")
    return {"before": before, "after": after, **removed}


# -- build ------------------------------------------------------------------------------------

def build(target: Path, locales: str | None = None, drop_boto3: bool = False,
          for_lambda: bool = False, requirements: Path = REQUIREMENTS) -> dict[str, int]:
    """The whole package as ``make deploy`` ships it: with this machine's wheels, or with
    ``for_lambda`` those of the functions' runtime (binary wheels only)."""
    if target.exists() and any(target.iterdir()):
        raise SystemExit(f"build: {target} is not empty; give a new or empty folder")
    platform = LAMBDA_PLATFORM if for_lambda else ()
    pip(*platform, "--target", str(target), "-r", str(requirements))
    stage(target)
    return prune(target, locales, drop_boto3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_stage = sub.add_parser("stage", help="pip install --no-deps --target DIR of the project")
    p_stage.add_argument("dir", type=Path)
    for name, text in (("prune", "shrink an installed function folder"),
                       ("build", "stage + pip install -r infra/requirements.txt + prune")):
        p = sub.add_parser(name, help=text)
        p.add_argument("dir", type=Path)
        p.add_argument("--locales", default=None,
                       help="comma-separated languages or locales to keep Babel data for "
                            "(default: $NIAGA_LOCALES, else the demo markets'; en always)")
        p.add_argument("--drop-boto3", action="store_true",
                       help="remove boto3, botocore and their deps (the runtime has them)")
        if name == "build":
            p.add_argument("--for-lambda", action="store_true",
                           help="install the wheels of the functions' runtime (CPython 3.12, "
                                "arm64) instead of this machine's")
    args = parser.parse_args(argv)
    if args.command == "stage":
        stage(args.dir)
    elif args.command == "prune":
        prune(args.dir, args.locales, args.drop_boto3)
    else:
        build(args.dir, args.locales, args.drop_boto3, args.for_lambda)
    return 0


if __name__ == "__main__":
    sys.exit(main())
