"""The Celery application, configured from the settings."""

from celery import Celery

from app.settings import get_settings
from broker import logs, worker_info  # noqa: F401  (worker_info: an inspect command)
from broker.config import celery_config

celery_app = Celery("conveyor")
celery_app.config_from_object(celery_config(get_settings()))
logs.connect_celery(celery_app)


def reconfigure() -> None:
    """Apply the current settings again (after the environment changed, e.g. in the demo)."""
    celery_app.conf.update(celery_config(get_settings()))
