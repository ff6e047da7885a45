"""A faithful local stand-in for Marketing Cloud Engagement: SOAP over HTTP, OAuth2, SFTP, on loopback.

Never imported by the pipeline layers; tests and the demo start it with `LocalMce`.
"""

from nto_etl.mce_local.server import LocalMce, LocalMceInfo

__all__ = ["LocalMce", "LocalMceInfo"]
