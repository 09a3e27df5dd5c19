"""Each image installs one dependency group: the group must hold everything its code imports, the
services without a model must not load torch, and compose must run each service from its own
Dockerfile target."""
import ast
import importlib.metadata
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from introspect.launcher import SERVICES, TRAINER, WEB_SERVICE
from shared.contract import db_roles
from shared.contract.settings import ENV_NAMES, load_settings
from trainer_svc.options import build_parser

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OUR_PACKAGES = {"shared", "introspect", *SERVICES, TRAINER}


def dockerfile_stages() -> dict[str, dict]:
    """Each Dockerfile stage: the stage it builds on, the groups it pip-installs, its CMD."""
    stages, stage = {}, None
    for line in (ROOT / "Dockerfile").read_text().splitlines():
        if found := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.I):
            stage = stages[found[2]] = {"from": found[1], "groups": [], "cmd": None}
        elif stage is not None and (found := re.search(r'pip install "/src\[([\w,]+)\]"', line)):
            stage["groups"] += found[1].split(",")
        elif stage is not None and line.startswith("CMD "):
            stage["cmd"] = json.loads(line[4:])
    return stages


def groups_of(stages: dict, target: str) -> list[str]:
    """The groups a target installs, its parent stages' included."""
    groups = []
    while target in stages:
        groups += stages[target]["groups"]
        target = stages[target]["from"]
    return groups


def installed_by(groups: list[str]) -> set[str]:
    """Every distribution that `pip install '.[groups]'` brings in (dependencies of dependencies
    included, read from the installed metadata)."""
    wanted = [Requirement(r) for r in PYPROJECT["dependencies"]]
    for group in groups:
        wanted += [Requirement(r) for r in PYPROJECT["optional-dependencies"][group]]
    found: set[str] = set()
    while wanted:
        req = wanted.pop()
        name = canonicalize_name(req.name)
        if name == "introspect":  # a group that includes other groups
            wanted += [Requirement(r) for g in req.extras for r in PYPROJECT["optional-dependencies"][g]]
            continue
        if name in found and not req.extras:
            continue
        found.add(name)
        for line in importlib.metadata.distribution(name).requires or []:
            dep = Requirement(line)
            if dep.marker is None or any(dep.marker.evaluate({"extra": e}) for e in {"", *req.extras}):
                wanted.append(dep)
    return found


def module_file(name: str) -> Path | None:
    path = ROOT / Path(*name.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.exists()), None)


def third_party_imports(files: list[Path]) -> set[str]:
    """Top-level names of the non-project modules imported anywhere in `files` or in the project
    modules they import, function-level (lazy) imports included."""
    todo, seen, outside = list(files), set(), set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in OUR_PACKAGES:
                    parts = name.split(".")  # a package's __init__ runs before its modules
                    todo += filter(None, (module_file(".".join(parts[:i])) for i in range(1, len(parts) + 1)))
                elif top not in sys.stdlib_module_names and top != "__future__":
                    outside.add(top)
    return outside


def distributions_for(modules: set[str]) -> set[str]:
    providers = importlib.metadata.packages_distributions()
    return {canonicalize_name(d) for m in modules for d in providers.get(m, [f"<nothing provides {m}>"])}


STAGES = dockerfile_stages()
IMAGE_CODE = {**{name: sorted((ROOT / name).rglob("*.py")) for name in (*SERVICES, TRAINER)},
              "migrate": [*sorted((ROOT / "migrations").rglob("*.py")), ROOT / "shared" / "role_passwords.py"]}


@pytest.mark.parametrize("target", sorted(IMAGE_CODE))
def test_each_image_installs_every_package_its_code_imports(target):
    needed = distributions_for(third_party_imports(IMAGE_CODE[target]))
    assert needed - installed_by(groups_of(STAGES, target)) == set()


def test_the_operators_command_installs_every_package_it_imports():
    needed = distributions_for(third_party_imports(sorted((ROOT / "introspect").rglob("*.py"))))
    assert needed - installed_by(["operator"]) == set()


def test_only_the_model_images_install_torch():
    with_torch = {target for target in IMAGE_CODE if "torch" in installed_by(groups_of(STAGES, target))}
    assert with_torch == {"selfplay_svc", TRAINER}


@pytest.mark.parametrize("package", ["understanding_svc", "journal_svc"])
def test_services_without_a_model_load_no_torch(package):
    """Every module of the package, its __main__ included, imported in a fresh interpreter."""
    code = (f"import pkgutil, sys, {package}\n"
            f"for m in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
            f"    __import__(m.name)\n"
            f"import {package}.__main__\n"
            f"print(sorted(n for n in sys.modules if n.split('.')[0] in ('torch', 'tokenizers')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_compose_gives_the_owner_url_to_migrate_only_and_each_service_its_role():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]

    def user(svc: str, var: str) -> str:  # compose fills ${VARIABLE:?...} in first
        return urlsplit(re.sub(r"\$\{[^}]*\}", "secret", services[svc]["environment"][var])).username
    owners = [name for name, svc in services.items() if "DATABASE_URL" in svc.get("environment", {})]
    assert owners == ["migrate"]
    assert user("migrate", "DATABASE_URL") == services["postgres"]["environment"]["POSTGRES_USER"]
    for svc in ("migrate", "journal_svc"):
        assert user(svc, "JOURNAL_DATABASE_URL") == db_roles.WRITER
    for svc in ("migrate", "journal_svc", "selfplay_svc"):
        assert user(svc, "READER_DATABASE_URL") == db_roles.READER
    for svc in ("understanding_svc", TRAINER):  # no database at all
        assert not {"JOURNAL_DATABASE_URL", "READER_DATABASE_URL"} & set(services[svc]["environment"])


def test_compose_runs_each_service_from_its_own_target():
    services = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    for name in (*SERVICES, TRAINER):
        svc = services[name]
        assert svc["build"]["target"] == name and name in STAGES
        assert (svc.get("command") or STAGES[name]["cmd"])[:3] == ["python", "-m", name]
        env = {k: str(v) for k, v in svc["environment"].items()}
        assert "NATS_URL" in env and set(env) <= set(ENV_NAMES.values())
        load_settings(env)  # every value passes validation
        assert "ports" not in svc or name == WEB_SERVICE  # the others scale freely
    build_parser().parse_args(services[TRAINER]["command"][3:])  # the trainer accepts its flags
    assert services["migrate"]["build"]["target"] == "migrate"
    assert STAGES["migrate"]["cmd"] == ["sh", "-c", "alembic upgrade head && python -m shared.role_passwords"]
    assert "-js" in services["nats"]["command"]
    assert services["nats"]["healthcheck"] and services["postgres"]["healthcheck"]
