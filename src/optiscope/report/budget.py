"""Which budget a task's comparison held equal: steps, gradient evaluations, both, or neither.

Optimizers may train for their own `steps` or `grad_evals` (`[[optimizers]]`), so a comparison is
fair in one currency and not necessarily the other: SAM at equal gradient evaluations takes half
of Adam's steps. The answer is read from the stored runs alone: each cell's planned `steps` and
the gradient evaluations it spent (`grad_evals`, the most any member spent). Cells that failed,
or whose members all diverged (training stopped early, the budget unspent), do not count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from optiscope.formatting import format_number
from optiscope.report.data import CellRuns, StoreView


@dataclass(frozen=True)
class Budget:
    """The ranges of steps and gradient evaluations over a task's cells that ran to the end."""

    steps: tuple[int, int] | None  # (least, most); None: no cell ran to the end
    grad_evals: tuple[int, int] | None
    n_cells: int
    n_left_out: int  # cells not counted: failed, or every member diverged

    @property
    def equal_steps(self) -> bool:
        return self.steps is not None and self.steps[0] == self.steps[1]

    @property
    def equal_grad_evals(self) -> bool:
        return self.grad_evals is not None and self.grad_evals[0] == self.grad_evals[1]

    def describe(self) -> str:
        """One line: "equal steps (N)", "equal gradient evaluations (N)", both, or neither."""
        if self.steps is None or self.grad_evals is None:
            return "Budget: no cell of this task trained to the end."
        steps, evals = _span(self.steps), _span(self.grad_evals)
        if self.equal_steps and self.equal_grad_evals:
            text = f"equal steps ({steps}) and equal gradient evaluations ({evals})"
        elif self.equal_steps:
            text = f"equal steps ({steps}); gradient evaluations differ ({evals})"
        elif self.equal_grad_evals:
            text = f"equal gradient evaluations ({evals}); steps differ ({steps})"
        else:
            text = f"neither equal: steps {steps}, gradient evaluations {evals}"
        if self.n_left_out:
            text += (f" (over {self.n_cells - self.n_left_out} of {self.n_cells} cells; the others "
                     "failed or diverged before the end)")
        return f"Budget: {text}."


def _span(lo_hi: tuple[int, int]) -> str:
    lo, hi = lo_hi
    return format_number(lo) if lo == hi else f"{format_number(lo)} to {format_number(hi)}"


def budget_of(cells: Sequence[CellRuns]) -> Budget:
    """The budget of `cells` (one task's), counting those that trained to the end."""
    counted = [c for c in cells if c.n_failed < len(c.status) and c.n_ok > 0]
    steps = [c.steps for c in counted]
    evals = [c.grad_evals for c in counted]
    return Budget(
        steps=(min(steps), max(steps)) if steps else None,
        grad_evals=(min(evals), max(evals)) if evals else None,
        n_cells=len(cells),
        n_left_out=len(cells) - len(counted),
    )


def budget_line(view: StoreView, task_key: str) -> str:
    """The task section's budget line."""
    return budget_of(view.cells_of(task_key)).describe()
