"""The Celery side of the async-runs comparison: the same no-op function as a Celery task, on
the same RabbitMQ, its results returned over the broker (rpc://) so that every run is observed."""
import os

from celery import Celery

app = Celery("bench", broker=os.environ.get("BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
             backend="rpc://")
app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"],
                worker_prefetch_multiplier=32, task_ignore_result=False, broker_connection_retry_on_startup=True)


@app.task(name="noop")
def noop(payload):
    return payload
