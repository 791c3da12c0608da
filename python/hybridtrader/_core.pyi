"""Type stubs for the Rust extension `hybridtrader._core`."""

__version__: str

class SlidingWindowLimiter:
    """Exact sliding-window rate limiter over one or more `(limit, window_seconds)` rates, per key, with
    weights: a request of weight w is admitted iff every rate's window `(now - window, now]` holds at most
    `limit - w`. Thread-safe. Its clock is monotonic nanoseconds since creation (`now_ns()`); the `*_at`
    methods take that time explicitly. Bad rates or weights (< 1, or above the smallest limit) raise
    ValueError naming them. `hybridtrader.RateLimiter` subclasses it with config and retries."""

    def __new__(cls, rates: list[tuple[int, float]]) -> SlidingWindowLimiter: ...
    @property
    def rates(self) -> list[tuple[int, float]]: ...
    def now_ns(self) -> int:
        """The limiter's clock: monotonic nanoseconds since it was created."""
    def try_acquire(self, key: str | None = None, weight: int = 1) -> bool:
        """Admit `weight` on `key` (None: "default") now if every window has room; never blocks."""
    def try_acquire_stamped(self, key: str | None = None, weight: int = 1) -> tuple[bool, int]:
        """`try_acquire` plus the limiter time (ns) the decision was taken at."""
    def try_acquire_at(self, now_ns: int, key: str | None = None, weight: int = 1) -> bool:
        """`try_acquire` at an explicit limiter time (earlier than the key's last time counts as that)."""
    def wait_time(self, key: str | None = None, weight: int = 1) -> float:
        """Seconds until `weight` would be admitted if nothing else is admitted meanwhile (0.0: now)."""
    def wait_ns_at(self, now_ns: int, key: str | None = None, weight: int = 1) -> int:
        """`wait_time` at an explicit limiter time, in nanoseconds."""
    def poll(self, key: str | None = None, weight: int = 1) -> float:
        """Admit now and return 0.0, or refuse and return the seconds to wait (> 0)."""
    def acquire(self, key: str | None = None, weight: int = 1, timeout: float | None = None) -> bool:
        """Block (GIL released) until admitted; False at once when the exact wait exceeds the timeout."""
    def stats(self) -> dict[str, object]:
        """admitted, rejected, admitted_weight, rates, and per key: the counters and `in_window` weights."""
