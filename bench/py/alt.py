"""Python's pattern for the same work: multiprocessing.Semaphore.

  python3 alt.py bench      reads N per line on stdin; runs N requests
                            (release + get_value + acquire); prints elapsed ns
  python3 alt.py lost N     two processes each do N x (release, release,
                            acquire) at once; prints the final and expected value
"""
import multiprocessing as mp
import sys
import time


def bench():
    sem = mp.Semaphore(0)
    for line in sys.stdin:
        n = int(line)
        release, get_value, acquire = sem.release, sem.get_value, sem.acquire
        t0 = time.perf_counter_ns()
        for _ in range(n):
            release()
            get_value()
            acquire()
        print(time.perf_counter_ns() - t0, flush=True)


def peer(sem, go, n):
    go.wait()
    for _ in range(n):
        sem.release()
        sem.release()
        sem.acquire()


def lost(n):
    ctx = mp.get_context("fork")
    sem = ctx.Semaphore(0)
    go = ctx.Event()
    procs = [ctx.Process(target=peer, args=(sem, go, n)) for _ in range(2)]
    for p in procs:
        p.start()
    go.set()
    for p in procs:
        p.join()
    print(f'{{"final": {sem.get_value()}, "expected": {2 * n}}}', flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "bench":
        bench()
    else:
        lost(int(sys.argv[2]))
