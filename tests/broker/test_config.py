"""Delivery settings: JSON only, late acks, reject on loss, prefetch 1, routing by task."""

from app.settings import Settings
from broker.config import celery_config
from broker.routing import queue_of


def test_json_only_and_safe_delivery():
    config = celery_config(Settings())
    assert config["accept_content"] == ["conveyor-json", "json"]
    assert config["task_serializer"] == config["result_serializer"] == "conveyor-json"
    assert config["task_acks_late"] and config["task_reject_on_worker_lost"]
    assert config["worker_prefetch_multiplier"] == 1
    transport = config["broker_transport_options"]
    assert transport["visibility_timeout"] > config["task_time_limit"] > config["task_soft_time_limit"]


def test_fetching_routes_to_extract_and_the_rest_to_load():
    for task in ("plan_run", "start_table", "extract_table"):
        assert queue_of(f"conveyor.{task}") == "extract"
    for task in ("create_table", "load_batch", "finish_table", "finish_run"):
        assert queue_of(f"conveyor.{task}") == "load"


def test_every_registered_task_has_a_route():
    import workers  # noqa: F401  (registers the tasks)
    from broker.celery_app import celery_app
    from broker.routing import TASK_ROUTES

    ours = {name for name in celery_app.tasks if name.startswith("conveyor.")}
    generic = {"conveyor.run_step", "conveyor.finish_steps"}  # queued per step by their canvas
    assert {name for name in ours - generic if name not in TASK_ROUTES} == set()
