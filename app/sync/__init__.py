"""The sync model: typed run plans, table syncs and their states, driven in-process or by Celery."""
