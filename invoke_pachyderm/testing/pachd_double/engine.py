"""The double's cluster: state, transactions and pipeline lifecycle behind one lock.

Writes run on a copy of the state that replaces it only on success, so a failed
call changes nothing (pachd runs each call in one SQL transaction).  Registry
look-ups for pipeline states happen outside the lock.
"""
from __future__ import annotations

import threading
import time

from python_pachyderm.proto.v2.transaction import transaction_pb2

from . import lifecycle, pps_ops
from .images import RegistryChecker
from .state import ClusterState
from .transactions import TransactionStore, apply_request, new_info, pre_tx_ops, run_requests, with_request


class Engine:
    def __init__(self, registry_url: str | None = None, start_delay: float = 0.05,
                 cluster_defaults: str = "{}"):
        self.registry_url = registry_url
        self.cluster_defaults = cluster_defaults  # what a fresh cluster starts with
        self.start_delay = start_delay
        self.clock = time.monotonic
        self._lock = threading.RLock()
        self._state = ClusterState.initial(cluster_defaults)
        self._transactions = TransactionStore()
        self._wire = lifecycle.WireCache()

    def reset(self) -> None:
        with self._lock:
            self._state = ClusterState.initial(self.cluster_defaults)
            self._transactions.clear()

    # --- generic reads and writes ------------------------------------------

    def read(self, query):
        """query(state) under the lock."""
        with self._lock:
            return query(self._state)

    def write(self, change):
        """change(state) on a copy that becomes the state if it does not raise."""
        with self._lock:
            work = self._state.copy()
            result = change(work)
            self._state = work
            return result

    def submit(self, txn_id: str | None, request: transaction_pb2.TransactionRequest) -> None:
        """A transactional write: appended to ``txn_id`` if given, else applied now."""
        if txn_id:
            self.append(txn_id, request)
        else:
            self.write(lambda state: apply_request(state, request, self.clock))

    # --- transactions ------------------------------------------------------

    def start_transaction(self) -> transaction_pb2.Transaction:
        with self._lock:
            return self._transactions.start()

    def inspect_transaction(self, txn_id: str) -> transaction_pb2.TransactionInfo:
        with self._lock:
            return self._transactions.get(txn_id)

    def list_transactions(self) -> list:
        with self._lock:
            return self._transactions.all()

    def delete_transaction(self, txn_id: str) -> None:
        with self._lock:
            self._transactions.delete(txn_id)

    def delete_all_transactions(self) -> None:
        with self._lock:
            self._transactions.clear()

    def append(self, txn_id: str, request) -> transaction_pb2.TransactionInfo:
        """Dry-run the transaction plus ``request``; keep the request only if it all works."""
        pre_tx_ops([request])  # driver.go appendTransaction
        with self._lock:
            info = self._transactions.get(txn_id)
            requests = list(info.requests) + [request]
            run_requests(self._state.copy(), requests, self.clock)
            updated = with_request(info, request)
            self._transactions.save(updated)
            return updated

    def finish_transaction(self, txn_id: str) -> transaction_pb2.TransactionInfo:
        with self._lock:
            info = self._transactions.get(txn_id)
            self.write(lambda state: run_requests(state, info.requests, self.clock))
            self._transactions.delete(txn_id)
            return info

    def batch_transaction(self, requests) -> transaction_pb2.TransactionInfo:
        """driver.go batchTransaction: PreTxOps, then runTransaction in one write, nothing stored."""
        pre_tx_ops(requests)
        info = new_info(requests)
        self.write(lambda state: run_requests(state, info.requests, self.clock))
        return info

    # --- pipelines as clients see them -------------------------------------

    def inspect_pipeline(self, pipeline, details: bool):
        version = self.read(lambda state: pps_ops.find_current(state, pipeline))
        return self._present(version, details, current=True)

    def list_pipelines(self, request) -> list:
        checker = RegistryChecker(self.registry_url)  # one per call: each image asked once
        return [lifecycle.present(v, *self._observed(v, current, checker), True) for v, current in self._listed(request)]

    def list_pipelines_wire(self, request) -> list[bytes]:
        """list_pipelines' answers, serialized (lifecycle.WireCache)."""
        checker = RegistryChecker(self.registry_url)
        return [self._wire.present(v, *self._observed(v, current, checker)) for v, current in self._listed(request)]

    def _listed(self, request) -> list:
        def versions_with_currency(state):
            found = pps_ops.list_versions(state, request)
            return [(v, pps_ops.is_current(state, v)) for v in found]

        return self.read(versions_with_currency)

    def _present(self, version, details: bool, current: bool):
        return lifecycle.present(version, *self._observed(version, current, RegistryChecker(self.registry_url)), details)

    def _observed(self, version, current: bool, checker: RegistryChecker) -> tuple[int, str]:
        if current:
            return lifecycle.observe(version, self.start_delay, checker, self.clock())
        return version.last_state, version.last_reason
