"""A throw-away Dovecot IMAP server: one mailbox user, plaintext login on loopback, its mail and
configuration in a folder of its own, run as the current user (no root, no system files).

For testing the bounce mailbox poller against a real IMAP server (Debian ``dovecot-imapd``).
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import tempfile
from pathlib import Path

from distributor.devservers.processes import ServerProcess, find_program

CONFIG = """\
protocols = imap
listen = 127.0.0.1
instance_name = distributor-dovecot-{port}
base_dir = {run}/base
state_dir = {root}/state
log_path = {root}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{mail}/mail/%u
first_valid_uid = 0
first_valid_gid = 0
default_login_user = {login_user}
default_internal_user = {user}
default_internal_group = {group}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={mail}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service auth {{
  unix_listener auth-userdb {{
    mode = 0600
    user = {user}
  }}
}}
"""


ROOT_LOGIN_USER = "dovenull"
ROOT_MAIL_USER = "dovecot"


class DovecotServer(ServerProcess):
    """``dovecot -F -c <root>/dovecot.conf`` with one user, ``user``/``password``."""

    def __init__(self, root: Path, *, user: str = "bounces", password: str = "bounces-pw") -> None:
        super().__init__(log_path=root / "dovecot.out")
        self.binary = find_program("dovecot", "dovecot-imapd")
        self.root = root
        self.user = user
        self.password = password
        self.config = root / "dovecot.conf"
        self.run_dir = root / "run"  # made outside ``root`` on start (see argv)

    def argv(self) -> list[str]:
        (self.root / "state").mkdir(parents=True, exist_ok=True)
        (self.root / "passwd").write_text(f"{self.user}:{{PLAIN}}{self.password}::::::\n")
        uid, gid = os.getuid(), os.getgid()
        user = pwd.getpwuid(uid).pw_name
        self.run_dir = Path(tempfile.mkdtemp(prefix="dovecot-run-"))
        self.run_dir.chmod(0o755)
        mail_root, login_user, mail_uid, mail_gid = self.root, user, uid, gid
        if uid == 0:
            # Dovecot runs neither its login processes nor a mailbox as root: as root (a
            # container, CI) both run as Debian's own unprivileged users, with the mail in a
            # folder they can reach.
            login_user = ROOT_LOGIN_USER
            mail_uid, mail_gid = pwd.getpwnam(ROOT_MAIL_USER)[2:4]
            mail_root = self.run_dir / "mailroot"
            mail_root.mkdir()
            os.chown(mail_root, mail_uid, mail_gid)
        self.config.write_text(
            CONFIG.format(
                root=self.root,
                run=self.run_dir,
                mail=mail_root,
                login_user=login_user,
                port=self.port,
                uid=mail_uid,
                gid=mail_gid,
                user=user,
                group=grp.getgrgid(gid).gr_name,
            )
        )
        return [self.binary, "-F", "-c", str(self.config)]

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.run_dir, ignore_errors=True)

    def env(self) -> dict[str, str]:
        """The settings that point the bounce poller at this mailbox."""
        return {
            "BOUNCE_IMAP_HOST": "127.0.0.1",
            "BOUNCE_IMAP_PORT": str(self.port),
            "BOUNCE_IMAP_SECURITY": "none",
            "BOUNCE_IMAP_USER": self.user,
            "BOUNCE_IMAP_PASSWORD": self.password,
        }

    def logs(self) -> str:
        path = self.root / "dovecot.log"
        return path.read_text(errors="replace") if path.exists() else ""
