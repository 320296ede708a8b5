"""What sign-off finds: violations with a category and a place on the die."""

from __future__ import annotations

from dataclasses import asdict, dataclass

MAX_PER_CATEGORY = 50  # listed; every violation is still counted


@dataclass(frozen=True)
class Violation:
    category: str  # e.g. "drc.metal_width", "lvs.via_moved", "lvs.open"
    message: str
    x_nm: int  # where on the die (centre of the offending shape or cell)
    y_nm: int
    where: str = ""  # tile, cell or net it belongs to

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        at = f"({self.x_nm / 1000:.3f}, {self.y_nm / 1000:.3f}) um"
        return f"{self.category} at {at}{' in ' + self.where if self.where else ''}: {self.message}"


class Findings:
    """Violations grouped by category, the first MAX_PER_CATEGORY of each kept in full."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.items: list[Violation] = []

    def add(self, v: Violation) -> None:
        n = self.counts.get(v.category, 0)
        self.counts[v.category] = n + 1
        if n < MAX_PER_CATEGORY:
            self.items.append(v)

    def count(self, prefix: str = "") -> int:
        return sum(n for c, n in self.counts.items() if c.startswith(prefix))

    def of(self, prefix: str) -> list[Violation]:
        return [v for v in self.items if v.category.startswith(prefix)]
