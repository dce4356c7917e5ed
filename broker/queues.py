"""The queues: extraction and loading run on separate worker pools."""

from kombu import Exchange, Queue

EXTRACT = "extract"
LOAD = "load"

exchange = Exchange("conveyor", type="direct")

QUEUES = (
    Queue(EXTRACT, exchange, routing_key=EXTRACT),
    Queue(LOAD, exchange, routing_key=LOAD),
)
