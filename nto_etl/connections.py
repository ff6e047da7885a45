"""Client settings for wherever MCE is: a real tenant (environment) or the local MCE (its info)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nto_etl.mce.settings import MceSettings
from nto_etl.secrets import Secret
from nto_etl.transfer import SftpSettings


def local_settings(
    info: Mapping[str, Any] | Any, *, legacy_login: bool = False
) -> tuple[MceSettings, SftpSettings]:
    """Settings for the local MCE from its info (the JSON `nto-etl mce-local` prints, or `LocalMce.info`)."""
    data = dict(info) if isinstance(info, Mapping) else vars(info)
    if legacy_login:
        mce = MceSettings(
            auth_mode="username",
            soap_url=data["soap_url"],
            username=data["username"],
            password=Secret(data["password"]),
            max_retries=2,
        )
    else:
        mce = MceSettings(
            auth_url=data["auth_url"],
            client_id=data["client_id"],
            client_secret=Secret(data["client_secret"]),
            account_id=data["account_id"],
            max_retries=2,
        )
    sftp = SftpSettings(
        host=data["sftp_host"],
        port=int(data["sftp_port"]),
        username=data["sftp_username"],
        password=Secret(data["sftp_password"]),
        known_hosts=data["sftp_known_hosts"],
    )
    return mce, sftp
