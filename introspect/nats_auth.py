"""NATS users for `introspect up` and the CLI: one password per role (shared.bus.permissions).

Passwords come from `INTROSPECT_NATS_<ROLE>_PASSWORD` when every one is set (an external server
configured with nats-server.conf), else from `<state>/nats-users.json` (mode 0600), which `up`
writes once, with random passwords, when it starts its own nats-server. Neither: no users, every
client connects anonymously (a development NATS without auth).
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

import msgspec

from shared.bus.permissions import USERS, password_variable, server_config

USERS_FILE = "nats-users.json"
CONFIG_FILE = "nats-auth.conf"


def from_environment(env=os.environ) -> dict[str, str] | None:
    passwords = {role: env.get(password_variable(role), "") for role in USERS}
    return passwords if all(passwords.values()) else None


def from_state(state_dir: Path) -> dict[str, str] | None:
    path = Path(state_dir) / USERS_FILE
    return json.loads(path.read_text()) if path.exists() else None


def known_passwords(state_dir: Path) -> dict[str, str] | None:
    """The passwords this machine knows, or None (anonymous)."""
    return from_environment() or from_state(state_dir)


def new_password() -> str:
    """192 random bits; letters and digits, starting with a letter: nats-server parses an
    environment variable's value as a config value, so "-Gx.." or "12e4.." would not be a string."""
    return "pw" + secrets.token_hex(24)


def create_passwords(state_dir: Path) -> dict[str, str]:
    """The known passwords, else new random ones saved (0600) for the next `up` and the CLI."""
    known = known_passwords(state_dir)
    if known and set(known) >= set(USERS):
        return known
    passwords = {role: new_password() for role in USERS} | (known or {})
    path = Path(state_dir) / USERS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(passwords, f)
    return passwords


def write_server_config(state_dir: Path) -> Path:
    """The authorization block nats-server reads with `-c`; its passwords come from server_env."""
    path = Path(state_dir) / CONFIG_FILE
    path.write_text(server_config())
    return path


def server_env(passwords: dict[str, str]) -> dict[str, str]:
    """What the server's config reads its passwords from."""
    return {password_variable(role): password for role, password in passwords.items()}


def client_env(passwords: dict[str, str] | None, role: str) -> dict[str, str]:
    """The environment a process connecting as `role` needs (nothing without users); journal_svc
    also gets the web journal's password (it connects a second time, as `web`)."""
    if not passwords:
        return {}
    web = {"INTROSPECT_WEB_NATS_PASSWORD": passwords["web"]} if role == "journal" else {}
    return {"NATS_USER": role, "NATS_PASSWORD": passwords[role], **web}


def as_role(settings, passwords: dict[str, str] | None, role: str):
    """`settings` connecting as `role` (unchanged without passwords: anonymous)."""
    if not passwords:
        return settings
    return msgspec.structs.replace(settings, nats_user=role, nats_password=passwords[role])


def settings_as(settings, role: str):
    """`settings` connecting as `role` with the known password, unless NATS_USER already says who
    connects (or no passwords are known: anonymous)."""
    return settings if settings.nats_user else as_role(settings, known_passwords(Path(settings.state_dir)), role)


def role_of(service: str) -> str:
    """The NATS user of a service module: trainer_svc -> trainer."""
    return service.removesuffix("_svc")
