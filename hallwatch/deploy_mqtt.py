"""A site's Mosquitto users and ACL: render ``deploy/mosquitto/hallwatch.acl.in`` for its halls.

One site (one broker) serves several halls. For each hall the template gives the users
``edge-<hall>``, ``manager-<hall>``, ``queue-<hall>``, ``evaluators-<hall>`` and
``devices-<hall>`` (the last three only where the hall has such topics), and once the
``aggregator``. :func:`build_site` writes into one folder:

- ``hallwatch.acl``: the rendered ACL (``acl_file``);
- ``hallwatch.passwd``: the password file (``password_file``), hashed by
  ``mosquitto_passwd -U`` so that no password is ever on a command line;
- ``secrets/<user>.env`` (folder 0700, files 0600): each new user's random password, as the
  environment lines its client reads (``HALL_MQTT_USER`` / ``HALL_MQTT_PASSWORD`` for an
  edge, ``HALLWATCH_MQTT_USERNAME`` / ``HALLWATCH_MQTT_PASSWORD`` for the aggregator).

Run again with more halls and the users already in the password file keep their passwords
(``rotate=True`` makes new ones for everybody); users no longer in the ACL are removed.

Halls come from their YAML files (the topics of ``queue``, ``evaluators`` and the devices'
``probe.mqtt_topic``) or as bare ids with the topics of ``deploy/examples/hall.yaml``.
Topics are checked: no two halls' topics may overlap, and no device topic may reach into
``hallwatch/``, so a hall's devices can never write for another hall or forge facts.

Example:
    >>> acl = render_acl(TEMPLATE_PATH.read_text(), [HallTopics.conventional("h1")])
    >>> acl.users[:3]
    ('aggregator', 'edge-h1', 'manager-h1')
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from hallwatch.config.models import HallConfig
from hallwatch.contract import ID_PATTERN, TOPIC_ROOT

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "hallwatch.acl.in"
ACL_NAME = "hallwatch.acl"
PASSWD_NAME = "hallwatch.passwd"
SECRETS_DIR = "secrets"
_LIST_FIELDS = {
    "{queue_topic}": "queue",
    "{evaluators_topic}": "evaluators",
    "{device_topic}": "devices",
}
_BAD_TOPIC = re.compile(r"[\s\x00%]")


@dataclass(frozen=True, slots=True)
class HallTopics:
    """One hall's id and the topic filters its devices publish on.

    Attributes:
        hall: Hall id.
        queue: The queue machine's topic filters (``queue.topic``).
        evaluators: The evaluators' topic filters (``evaluators.topic``).
        devices: The devices' heartbeat topics (``devices[].probe.mqtt_topic``).
    """

    hall: str
    queue: tuple[str, ...] = ()
    evaluators: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    @classmethod
    def conventional(cls, hall: str) -> HallTopics:
        """The topics of ``deploy/examples/hall.yaml`` for a hall known only by its id."""
        return cls(hall, (f"qms/{hall}/#",), (f"evaluators/{hall}/#",), (f"devices/{hall}/#",))

    @classmethod
    def from_config(cls, config: HallConfig) -> HallTopics:
        """The topics of a loaded hall config (``{hall}`` already replaced)."""
        devices = [d.probe.mqtt_topic for d in config.devices if d.probe and d.probe.mqtt_topic]
        return cls(
            config.hall.id,
            (config.queue.topic,) if config.queue else (),
            (config.evaluators.topic,) if config.evaluators else (),
            tuple(dict.fromkeys(devices)),
        )

    def all_topics(self) -> tuple[str, ...]:
        """Every device topic filter of the hall."""
        return self.queue + self.evaluators + self.devices


@dataclass(frozen=True, slots=True)
class SiteAcl:
    """A rendered ACL file and the users it names, in file order."""

    text: str
    users: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Credential:
    """A user's new password (never shown in ``repr``)."""

    user: str
    password: str = field(repr=False)

    def env_lines(self) -> str:
        """The environment lines the user's client reads."""
        if self.user.startswith("edge-"):
            names = ("HALL_MQTT_USER", "HALL_MQTT_PASSWORD")
        elif self.user == "aggregator":
            names = ("HALLWATCH_MQTT_USERNAME", "HALLWATCH_MQTT_PASSWORD")
        else:
            names = ("MQTT_USERNAME", "MQTT_PASSWORD")
        return f"{names[0]}={self.user}\n{names[1]}={self.password}\n"


@dataclass(frozen=True, slots=True)
class SiteFiles:
    """What :func:`build_site` wrote.

    Attributes:
        acl_path: The ACL file.
        passwd_path: The password file.
        created: Users given a new password (their secrets files were written).
        kept: Users whose entry in the password file was kept.
        removed: Users dropped from the password file.
    """

    acl_path: Path
    passwd_path: Path
    created: tuple[Credential, ...]
    kept: tuple[str, ...]
    removed: tuple[str, ...]


def filters_overlap(a: str, b: str) -> bool:
    """Whether some topic matches both MQTT topic filters.

    >>> filters_overlap("qms/h1/#", "qms/+/ticket"), filters_overlap("qms/h1/#", "qms/h2/#")
    (True, False)
    """
    la, lb = a.split("/"), b.split("/")
    for x, y in zip(la, lb, strict=False):
        if "#" in (x, y):
            return True
        if x != y and "+" not in (x, y):
            return False
    if len(la) == len(lb):
        return True
    longer = la if len(la) > len(lb) else lb
    return longer[min(len(la), len(lb))] == "#" and len(longer) == min(len(la), len(lb)) + 1


def check_halls(halls: Sequence[HallTopics]) -> None:
    """Refuse halls whose ids or topics would let one hall's clients act for another.

    Raises:
        ValueError: A bad or repeated hall id; a topic filter that is malformed, empty,
            starts with ``$``, holds whitespace or ``%``, reaches into ``hallwatch/``, or
            overlaps a topic of another hall.
    """
    seen: set[str] = set()
    for hall in halls:
        if not re.match(ID_PATTERN, hall.hall):
            raise ValueError(f"{hall.hall!r} is not a valid hall id ({ID_PATTERN})")
        if hall.hall in seen:
            raise ValueError(f"hall {hall.hall!r} given twice")
        seen.add(hall.hall)
        for topic in hall.all_topics():
            _check_topic(hall.hall, topic)
    for i, first in enumerate(halls):
        for second in halls[i + 1 :]:
            for a in first.all_topics():
                for b in second.all_topics():
                    if filters_overlap(a, b):
                        raise ValueError(
                            f"topic {a!r} of hall {first.hall!r} overlaps {b!r} of hall "
                            f"{second.hall!r}: one hall's devices could write for the other"
                        )


def _check_topic(hall: str, topic: str) -> None:
    levels = topic.split("/")
    malformed = any(("+" in lv and lv != "+") or ("#" in lv and lv != "#") for lv in levels)
    if not topic or _BAD_TOPIC.search(topic) or topic.startswith("$") or malformed:
        raise ValueError(f"hall {hall!r}: {topic!r} is not a usable topic filter")
    if "#" in levels[:-1]:
        raise ValueError(f"hall {hall!r}: '#' must be the last level of {topic!r}")
    if filters_overlap(topic, f"{TOPIC_ROOT.split('/')[0]}/#"):
        raise ValueError(f"hall {hall!r}: device topic {topic!r} reaches into HallWatch's topics")


def render_acl(template: str, halls: Sequence[HallTopics]) -> SiteAcl:
    """Render the ACL template for a site's halls (see the template's header for the rules).

    Args:
        template: The text of ``hallwatch.acl.in``.
        halls: The site's halls (checked with :func:`check_halls`).

    Returns:
        The ACL text and its users.

    Raises:
        ValueError: The halls fail :func:`check_halls`, or the template has no ``[site]``
            and ``[hall]`` sections.
    """
    check_halls(halls)
    sections: dict[str, list[str]] = {"header": [], "site": [], "hall": []}
    current = "header"
    for line in template.splitlines():
        marker = re.fullmatch(r"#\s*\[(site|hall)\]\s*", line.strip())
        if marker:
            current = marker.group(1)
            continue
        sections[current].append(line)
    if not any(line.startswith("user ") for line in sections["site"] + sections["hall"]):
        raise ValueError("the ACL template has no user in its [site] and [hall] sections")
    out = [
        "# Generated by `hallwatch mqtt-site` from hallwatch.acl.in; do not edit, render again.",
        f"# Halls: {', '.join(h.hall for h in halls)}",
        "",
    ]
    users: list[str] = []
    blocks = _blocks(sections["site"], None)
    for hall in halls:
        blocks += [[f"# ---- hall {hall.hall} ----"], *_blocks(sections["hall"], hall)]
    for block in blocks:
        user = next((ln.split(None, 1)[1] for ln in block if ln.startswith("user ")), None)
        has_topics = any(ln.startswith("topic ") for ln in block)
        if user is not None and not has_topics:
            continue  # a user with nothing to do is not created
        if user is not None:
            users.append(user)
        out += [*block, ""]
    if len(set(users)) != len(users):
        raise ValueError("the rendered ACL names a user twice")
    return SiteAcl("\n".join(out).rstrip("\n") + "\n", tuple(users))


def _blocks(lines: list[str], hall: HallTopics | None) -> list[list[str]]:
    """Expand a section's lines and split them into blocks, one per ``user`` line."""
    blocks: list[list[str]] = [[]]
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # the template's comments stay in the template
        if line.startswith("user ") and blocks[-1]:
            blocks.append([])
        blocks[-1] += _expand(line, hall)
    return [b for b in blocks if b]


def _expand(line: str, hall: HallTopics | None) -> list[str]:
    if hall is None:
        if "{" in line:
            raise ValueError(f"placeholder in the [site] section: {line!r}")
        return [line]
    line = line.replace("{hall}", hall.hall)
    found = [p for p in _LIST_FIELDS if p in line]
    if len(found) > 1:
        raise ValueError(f"more than one topic placeholder in {line!r}")
    if not found:
        if "{" in line:
            raise ValueError(f"unknown placeholder in {line!r}")
        return [line]
    topics: tuple[str, ...] = getattr(hall, _LIST_FIELDS[found[0]])
    return [line.replace(found[0], topic) for topic in topics]


def find_mosquitto_passwd() -> str | None:
    """Path of ``mosquitto_passwd``, or None."""
    for candidate in ("/usr/bin/mosquitto_passwd", "/usr/local/bin/mosquitto_passwd"):
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which("mosquitto_passwd")


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by its owner only (0600)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _hash_passwords(credentials: Sequence[Credential], directory: Path, binary: str) -> list[str]:
    """``user:hash`` lines for the credentials, hashed by ``mosquitto_passwd -U``."""
    if not credentials:
        return []
    fd, tmp = tempfile.mkstemp(prefix=".plain.", dir=directory)  # 0600 from mkstemp
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.writelines(f"{c.user}:{c.password}\n" for c in credentials)
        done = subprocess.run([binary, "-U", tmp], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"mosquitto_passwd failed: {done.stderr.strip() or done.stdout}")
        lines = Path(tmp).read_text(encoding="utf-8").splitlines()
    finally:
        Path(tmp).unlink(missing_ok=True)
    if len(lines) != len(credentials) or not all(ln.split(":", 1)[1] for ln in lines):
        raise RuntimeError("mosquitto_passwd did not hash every password")
    return lines


def build_site(
    out_dir: Path,
    halls: Sequence[HallTopics],
    *,
    template: Path = TEMPLATE_PATH,
    rotate: bool = False,
    mosquitto_passwd: str | None = None,
) -> SiteFiles:
    """Write a site's ACL, password file and new users' secrets into ``out_dir``.

    Args:
        out_dir: Folder for ``hallwatch.acl``, ``hallwatch.passwd`` and ``secrets/``
            (created if missing; keep it private, e.g. on the admin's machine).
        halls: The site's halls.
        template: The ACL template.
        rotate: Give every user a new password, not only the users that have none yet.
        mosquitto_passwd: The ``mosquitto_passwd`` executable (default: found on the system).

    Returns:
        The files written and which users were created, kept or removed.

    Raises:
        ValueError: Bad halls or template (nothing is written).
        FileNotFoundError: The template or ``mosquitto_passwd`` is missing.
        RuntimeError: ``mosquitto_passwd`` failed.
    """
    acl = render_acl(template.read_text(encoding="utf-8"), halls)
    binary = mosquitto_passwd or find_mosquitto_passwd()
    if binary is None:
        raise FileNotFoundError("mosquitto_passwd not found: install the mosquitto package")
    out_dir.mkdir(parents=True, exist_ok=True)
    secrets_dir = out_dir / SECRETS_DIR
    secrets_dir.mkdir(mode=0o700, exist_ok=True)
    os.chmod(secrets_dir, 0o700)
    passwd_path = out_dir / PASSWD_NAME
    existing: dict[str, str] = {}
    if passwd_path.exists():
        for line in passwd_path.read_text(encoding="utf-8").splitlines():
            if ":" in line and not line.startswith("#"):
                existing[line.split(":", 1)[0]] = line
    kept = [u for u in acl.users if u in existing and not rotate]
    created = [
        Credential(u, secrets.token_urlsafe(24)) for u in acl.users if u not in kept
    ]  # 32 characters of [A-Za-z0-9_-]: nothing to percent-encode in a URL
    hashed = {ln.split(":", 1)[0]: ln for ln in _hash_passwords(created, out_dir, binary)}
    lines = [existing[u] if u in kept else hashed[u] for u in acl.users]
    for cred in created:
        _write_private(secrets_dir / f"{cred.user}.env", cred.env_lines())
    _write_private(passwd_path, "\n".join(lines) + "\n")
    acl_path = out_dir / ACL_NAME
    acl_path.write_text(acl.text, encoding="utf-8")
    removed = tuple(u for u in existing if u not in acl.users)
    for user in removed:
        (secrets_dir / f"{user}.env").unlink(missing_ok=True)
    logger.info(
        "site of %d halls: %d users new, %d kept, %d removed",
        len(halls),
        len(created),
        len(kept),
        len(removed),
    )
    return SiteFiles(acl_path, passwd_path, tuple(created), tuple(kept), removed)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (for ``hallwatch mqtt-site`` and ``python -m``)."""
    parser.add_argument("--out", required=True, type=Path, help="Folder to write the site into.")
    parser.add_argument(
        "--config", action="append", default=[], type=Path, help="Hall YAML file (repeatable)."
    )
    parser.add_argument(
        "--hall",
        action="append",
        default=[],
        help="Hall id without a YAML file (the example's topics; repeatable).",
    )
    parser.add_argument("--template", type=Path, default=TEMPLATE_PATH, help="ACL template.")
    parser.add_argument("--rotate", action="store_true", help="New passwords for every user.")
    parser.add_argument(
        "--show-passwords",
        action="store_true",
        help="Also print the new users' environment lines (else only in secrets/).",
    )


def run(args: argparse.Namespace) -> int:
    """Run the command on parsed arguments; returns the exit status."""
    from hallwatch.config.loader import ConfigError, read_hall_config

    halls = [HallTopics.conventional(h) for h in args.hall]
    try:
        for path in args.config:
            config, _warnings = read_hall_config(path, require_env=False)
            halls.append(HallTopics.from_config(config))
        if not halls:
            raise ValueError("give at least one --config or --hall")
        site = build_site(args.out, halls, template=args.template, rotate=args.rotate)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (ValueError, OSError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"ACL:           {site.acl_path}")
    print(f"password file: {site.passwd_path}")
    for cred in site.created:
        print(f"new user  {cred.user:<32} {args.out / SECRETS_DIR / (cred.user + '.env')}")
    for user in site.kept:
        print(f"kept user {user}")
    for user in site.removed:
        print(f"removed   {user}")
    if args.show_passwords:
        for cred in site.created:
            print(f"\n# {cred.user}\n{cred.env_lines()}", end="")
    return 0


def add_subcommand(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``mqtt-site`` on the ``hallwatch`` command line."""
    parser = sub.add_parser(
        "mqtt-site", help="Write a site's Mosquitto ACL, password file and per-user secrets."
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m hallwatch.deploy_mqtt``: the same as ``hallwatch mqtt-site``."""
    parser = argparse.ArgumentParser(prog="hallwatch mqtt-site", description=__doc__)
    add_arguments(parser)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
