"""Transactions, following src/server/transaction/server/driver.go.

A write sent with the ``pach-transaction`` header is dry-run together with the
requests already in the transaction, and appended only if that run succeeds.
FinishTransaction runs them all against the cluster: all or nothing, the error
naming the failing request ("error running request 2 of 3: ...").  A finished
or deleted transaction is gone (NOT_FOUND); one that failed to finish stays.
"""
from __future__ import annotations

import uuid

from python_pachyderm.proto.v2.transaction import transaction_pb2

from . import pfs_ops, pps_ops
from invoke_pachyderm.backends.pachd_v28 import messages
from .pps_v28_ops import create_pipeline_transaction
from .errors import RpcFailure, not_found, unimplemented, unknown
from .state import ClusterState, now_timestamp


def apply_request(state: ClusterState, request: transaction_pb2.TransactionRequest, clock) -> None:
    fields = request.ListFields()
    kind = fields[0][0].name if fields else ""
    if kind == "create_repo":
        pfs_ops.create_repo(state, request.create_repo)
    elif kind == "delete_repo":
        pfs_ops.delete_repo(state, request.delete_repo)
    elif kind == "create_pipeline":
        pps_ops.create_pipeline(state, request.create_pipeline, clock)
    elif kind:
        raise unimplemented(f"transaction request {kind} is not modelled by the pachd double")
    elif (v2 := create_pipeline_transaction(request)) is not None:
        create_request, user_json, effective_json = v2
        pps_ops.create_pipeline(state, create_request, clock, user_json=user_json, effective_json=effective_json)
    else:
        raise unknown("unrecognized transaction request type")


def pre_tx_ops(requests) -> None:
    """transactionenv/env.go PreTxOps (>= 2.8): a CreatePipelineTransaction without its request
    is refused before any SQL transaction. (Its Determined side effects are not modelled.)"""
    for request in requests:
        payload = messages().TransactionRequestV28.FromString(request.SerializeToString()).create_pipeline_v2
        if payload and not messages().CreatePipelineTransaction.FromString(payload).create_pipeline_request:
            raise unknown(
                "run pre-transaction operations: nil CreatePipelineRequest in CreatePipelineTransaction"
            )


def run_requests(state: ClusterState, requests, clock) -> None:
    """runTransaction: apply in order; the first failure names its request."""
    total = len(requests)
    for index, request in enumerate(requests, start=1):
        try:
            apply_request(state, request, clock)
        except RpcFailure as failure:
            raise failure.wrapped(f"error running request {index} of {total}")


def new_info(requests=()) -> transaction_pb2.TransactionInfo:
    return transaction_pb2.TransactionInfo(
        transaction=transaction_pb2.Transaction(id=uuid.uuid4().hex),
        requests=list(requests),
        responses=[transaction_pb2.TransactionResponse() for _ in requests],
        started=now_timestamp(),
    )


def with_request(info, request) -> transaction_pb2.TransactionInfo:
    """The stored info after a successful append: one more request, version + 1."""
    updated = transaction_pb2.TransactionInfo()
    updated.CopyFrom(info)
    updated.requests.append(request)
    updated.responses.append(transaction_pb2.TransactionResponse())
    updated.version += 1
    return updated


class TransactionStore:
    """Unfinished transactions by id (pachd keeps them in postgres)."""

    def __init__(self):
        self._infos: dict[str, transaction_pb2.TransactionInfo] = {}

    def start(self) -> transaction_pb2.Transaction:
        info = new_info()
        self._infos[info.transaction.id] = info
        return info.transaction

    def get(self, txn_id: str) -> transaction_pb2.TransactionInfo:
        info = self._infos.get(txn_id)
        if info is None:
            raise not_found(f"transactions {txn_id} not found")
        return info

    def save(self, info: transaction_pb2.TransactionInfo) -> None:
        self._infos[info.transaction.id] = info

    def delete(self, txn_id: str) -> None:
        self.get(txn_id)
        del self._infos[txn_id]

    def all(self) -> list:
        return list(self._infos.values())

    def clear(self) -> None:
        self._infos.clear()
