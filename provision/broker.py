"""The broker's provisioning step: the AUDIT stream and the audit service's durable consumer,
and the REVOCATIONS key-value bucket of token revocations, made or brought up to date with the
admin credential. Running it again changes nothing unless the settings changed (replicas, ack
wait, ack-pending limit, how long revocations are kept), which it then applies.

The services never create either: their NATS users may not (nats/nats.conf). Standalone:
`python -m provision.broker` with MICRO_BROKER_ADDRESS and the admin's NATS_NKEY_SEED_FILE.
"""

from __future__ import annotations

import asyncio
import logging
import time

from nats.aio.client import Client
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.client import JetStreamContext
from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError
from pydantic import Field
from pydantic_settings import BaseSettings

import nats
from global_utils.config.groups import GROUP_CONFIG, GroupedSettings
from global_utils.config.loading import load_settings
from global_utils.config.settings import BrokerSettings
from global_utils.events.audit_event import AUDIT_CONSUMER, AUDIT_STREAM, Subject
from global_utils.identity.revocations import REVOCATIONS_STREAM, REVOCATIONS_SUBJECT_PREFIX
from global_utils.messaging.broker import BrokerAccess

logger = logging.getLogger(__name__)

# JetStream drops a re-published event with the same Nats-Msg-Id within this window; the
# audit table's unique (eventid, actiontime) catches anything older.
DUPLICATE_WINDOW_SECONDS = 600.0
MAX_AGE_SECONDS = 7 * 24 * 3600.0
# A revocation matters while a token issued before it may still be presented: at least the
# longest access token lifetime (ACCESS_TOKEN_SECONDS allows up to a day).
REVOCATIONS_KEEP_SECONDS = 24 * 3600.0
# Values kept per user: a verifier takes the latest not-before time of those it sees, so two
# revocations of one user published out of order cannot leave the earlier one in force.
REVOCATIONS_HISTORY = 5
REVOCATIONS_DUPLICATE_WINDOW_SECONDS = 120.0
# What a server (or a cluster still electing its JetStream leaders) answers while not ready.
_NOT_READY = (ServiceUnavailableError, NatsTimeoutError, NoRespondersError, TimeoutError)
# "no suitable peers for placement": a cluster whose servers have not all joined yet cannot
# place the stream's replicas; it can once they have.
_NO_PEERS_YET = 10005


class StreamSettings(BaseSettings):
    """What the AUDIT stream and the audit service's durable consumer are made with."""

    model_config = GROUP_CONFIG

    audit_stream_replicas: int = Field(default=1, ge=1, le=5)
    """Servers of a NATS cluster holding the AUDIT stream: 3 on a cluster (the Kubernetes
    Job), 1 alone."""
    consumer_ack_wait_seconds: float = Field(default=30.0, ge=1, le=3600)
    """JetStream redelivers an event not acknowledged within this long."""
    consumer_max_ack_pending: int = Field(default=10_000, ge=1, le=1_000_000)
    """Deliveries awaiting an ack at once, over every audit instance (20 default batches)."""
    revocations_keep_seconds: float = Field(
        default=REVOCATIONS_KEEP_SECONDS, ge=60, le=366 * 86_400
    )
    """How long token revocations are kept: at least the user service's ACCESS_TOKEN_SECONDS."""
    provision_broker_timeout_seconds: float = Field(default=120.0, gt=0, le=3600)
    """How long to wait for NATS (and a cluster's JetStream leaders) before giving up."""


class BrokerProvisioningSettings(GroupedSettings):
    """The broker side of provisioning: NATS (MICRO_BROKER_ADDRESS, the admin's
    NATS_NKEY_SEED(_FILE), NATS_TLS_*) and what the stream and the consumer are made with."""

    broker: BrokerSettings
    stream: StreamSettings


def stream_config(replicas: int = 1) -> StreamConfig:
    """The stream keeping audit events: file storage, a week, on replicas servers."""
    return StreamConfig(
        name=AUDIT_STREAM,
        subjects=[Subject.AUDIT.value],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=MAX_AGE_SECONDS,
        num_replicas=replicas,
    )


def revocations_config(
    replicas: int = 1, keep_seconds: float = REVOCATIONS_KEEP_SECONDS
) -> StreamConfig:
    """The REVOCATIONS key-value bucket (user id -> not-before time) as JetStream keeps one:
    the stream KV_REVOCATIONS, on replicas servers, each value kept keep_seconds."""
    return StreamConfig(
        name=REVOCATIONS_STREAM,
        subjects=[f"{REVOCATIONS_SUBJECT_PREFIX}>"],
        storage=StorageType.FILE,
        retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.NEW,
        max_msgs_per_subject=REVOCATIONS_HISTORY,
        max_age=keep_seconds,
        duplicate_window=REVOCATIONS_DUPLICATE_WINDOW_SECONDS,
        allow_rollup_hdrs=True,
        deny_delete=True,
        allow_direct=True,
        num_replicas=replicas,
    )


def consumer_config(
    ack_wait_seconds: float = 30.0, max_ack_pending: int = 10_000
) -> ConsumerConfig:
    """The audit service's durable pull consumer: every event, acked one by one."""
    return ConsumerConfig(
        durable_name=AUDIT_CONSUMER,
        filter_subject=Subject.AUDIT.value,
        ack_policy=AckPolicy.EXPLICIT,
        deliver_policy=DeliverPolicy.ALL,
        ack_wait=ack_wait_seconds,
        max_deliver=-1,  # a database outage must not use up an event's deliveries
        max_ack_pending=max_ack_pending,
    )


async def provision_broker(
    url: str,
    access: BrokerAccess,
    *,
    replicas: int = 1,
    ack_wait_seconds: float = 30.0,
    max_ack_pending: int = 10_000,
    revocations_keep_seconds: float = REVOCATIONS_KEEP_SECONDS,
    timeout: float = 120.0,
) -> str:
    """Makes or updates the stream and the consumer on the NATS at url (comma-separated for a
    cluster) with access (the admin's); waits up to timeout for the servers. Returns what it
    did, in words."""
    deadline = time.monotonic() + timeout
    client = await _connect(url, access, deadline)
    try:
        while True:
            try:
                return await _apply(
                    client,
                    stream_config(replicas),
                    consumer_config(ack_wait_seconds, max_ack_pending),
                    revocations_config(replicas, revocations_keep_seconds),
                )
            except Exception as exc:
                if not _not_ready(exc):
                    raise
                if time.monotonic() > deadline:
                    raise TimeoutError(
                        f"JetStream at {url} not ready after {timeout}s: {exc}"
                    ) from None
                await asyncio.sleep(0.5)
    finally:
        await client.close()


def _not_ready(exc: Exception) -> bool:
    return isinstance(exc, _NOT_READY) or (
        isinstance(exc, APIError) and exc.err_code == _NO_PEERS_YET
    )


async def _connect(url: str, access: BrokerAccess, deadline: float) -> Client:
    while True:
        try:
            return await nats.connect(
                servers=url.split(","),
                name="provision",
                allow_reconnect=False,
                connect_timeout=2,
                **access.connect_options(),
            )
        except Exception as exc:  # refused, unreachable, bad credentials: retried until then
            if time.monotonic() > deadline:
                raise ConnectionError(f"NATS at {url}: {exc}") from None
            logger.debug("NATS not ready for provisioning: %s", exc)
            await asyncio.sleep(1.0)


async def _apply(
    client: Client, stream: StreamConfig, consumer: ConsumerConfig, revocations: StreamConfig
) -> str:
    js = client.jetstream()
    stream_done = await _put_stream(js, stream)
    # A durable's create is create-or-update: the same config changes nothing.
    await js.add_consumer(AUDIT_STREAM, consumer)
    revocations_done = await _put_stream(js, revocations)
    return (
        f"stream {AUDIT_STREAM} {stream_done} ({stream.num_replicas} replicas), consumer"
        f" {AUDIT_CONSUMER} (ack wait {consumer.ack_wait:g} s, max ack pending"
        f" {consumer.max_ack_pending}), revocations bucket {REVOCATIONS_STREAM}"
        f" {revocations_done} ({revocations.num_replicas} replicas, kept"
        f" {revocations.max_age:g} s)"
    )


async def _put_stream(js: JetStreamContext, config: StreamConfig) -> str:
    assert config.name is not None  # every config above names its stream
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        await js.add_stream(config)
        return "created"
    await js.update_stream(config)  # the same config changes nothing
    return "up to date"


async def run(settings: BrokerProvisioningSettings) -> str:
    """The step as `python -m provision` runs it."""
    done = await provision_broker(
        settings.broker.broker_url,
        settings.broker.broker_access("provision"),
        replicas=settings.stream.audit_stream_replicas,
        ack_wait_seconds=settings.stream.consumer_ack_wait_seconds,
        max_ack_pending=settings.stream.consumer_max_ack_pending,
        revocations_keep_seconds=settings.stream.revocations_keep_seconds,
        timeout=settings.stream.provision_broker_timeout_seconds,
    )
    logger.info("broker provisioned: %s", done)
    return done


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    asyncio.run(run(load_settings(BrokerProvisioningSettings)))
