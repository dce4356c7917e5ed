"""Does extraction + loading memory stay flat however large the table is?

Syncs a table of N and of 10×N records in-process (sandbox in its own process, SQLite
warehouse) and prints the peak Python memory of each run as a ratio against the small run.
Flat means the ratio stays near 1 while the records grow tenfold.

    python bench/memory_flat.py [--records 3000]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sandbox(rows: int, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "broker.cli", "sandbox", "--port", str(port),
                             "--rows", str(rows), "--rate", "0", "--token", "bench"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.2)
    raise RuntimeError("sandbox did not start")


def peak_memory(rows: int) -> tuple[float, float]:
    """Peak traced MiB and seconds of one in-process sync of a ``rows``-record table."""
    from app.extractors import AirtableExtractor
    from app.warehouses import SQLiteWarehouse
    from app.workflows import ETLWorkflow
    from broker.cli.local import SANDBOX_BASE_ID

    port = free_port()
    server = sandbox(rows, port)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            extractor = AirtableExtractor(api_key="bench", base_id=SANDBOX_BASE_ID,
                                          api_url=f"http://127.0.0.1:{port}", tables=["Invoices"],
                                          requests_per_second=10_000)
            warehouse = SQLiteWarehouse(f"sqlite:///{tmp}/w.db")
            tracemalloc.start()
            started = time.perf_counter()
            report = ETLWorkflow(extractor, warehouse).run(drop_tables=True)
            elapsed = time.perf_counter() - started
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            assert report.tables[0].loaded == rows, report.tables[0]
            warehouse.dispose()
    finally:
        server.terminate()
        server.wait(10)
    return peak / 2**20, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=3000, help="records in the small table")
    args = parser.parse_args()
    small, big = args.records, args.records * 10
    small_mib, small_s = peak_memory(small)
    big_mib, big_s = peak_memory(big)
    print(f"records        {small:>8} {big:>8}   ratio {big / small:.1f}")
    print(f"peak memory    {small_mib:>7.1f}M {big_mib:>7.1f}M   ratio {big_mib / small_mib:.2f}")
    print(f"time           {small_s:>7.1f}s {big_s:>7.1f}s   ratio {big_s / small_s:.2f}")
    print(f"memory grows {big_mib / small_mib:.2f}x for {big / small:.0f}x the records")


if __name__ == "__main__":
    main()
