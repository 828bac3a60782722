"""Claims as code: `[[hypotheses]]` in the experiment file, verified on the stored runs.

A hypothesis compares one statistic of two cells' runs::

    [[hypotheses]]
    name = "adam-small-rmed"
    metric = "r_med/*"            # a stored metric; "family/*" or "acc_task*" reduces several
    reduce = "median"             # how a family is reduced per step: median | mean | max | min
    statistic = "final"           # final | at_step | min | max | auc | steps_to_target |
                                  # forgetting | rate | final_rate
    step = 500                    # only with at_step: a logged step
    target = 0.1                  # only with steps_to_target, rate, final_rate: the value to reach
    task = "..."                  # optional when a and b name one cell each without it
    task_settings = { width = 64 }  # optional: narrows a task grid
    a = "adam"                    # a cell: its label, else its optimizer name (exactly one cell)
    b = "sgd"
    direction = "less"            # less | greater | two-sided | equivalent ("a less than b")
    margin = 0.1                  # only with equivalent: |shift| below margin (statistic's units)
    test = "mann-whitney"         # mann-whitney | permutation | fisher (rates; the default there)
    alpha = 0.05
    min_effect = 0.33             # Cliff's delta (rank tests) or rate difference (fisher)
    power = 0.8                   # the power asked before a non-holding claim is called "fails"
    permutations = 9999           # permutation test resamples
    seed = 0                      # permutation and bootstrap seed
    requires = [                  # guards: conditions for the verdict to count (else "invalid")
      { side = "both", metric = "acc_task*", statistic = "max", reduce = "min", op = ">=", value = 0.9 },
      { side = "b", metric = "loss", op = "<", value = 0.5, all_seeds = true, name = "b-trains" },
      { side = "both", max_diverged = 2 },
    ]
    plasticity = 0.5              # forgetting only: the default guard's floor; false switches it off

A field that does nothing for the claim (say `step` beside statistic = "final") is refused.
Guards (`requires`, and the plasticity guard every forgetting hypothesis has by default) are
checked in `guards`; one not met makes the verdict "invalid", with the values measured.

Per-run statistics (`metrics`): the final value, the value at a step, the minimum or maximum,
the area under the curve (trapezoid over logged steps), the first step reaching a target (never:
+inf), forgetting (continual tasks: per task the best accuracy minus the final one, averaged over
all but the last task), the fraction of runs reaching a target at any logged step, the start
included (rate), and the fraction whose final value reaches it (final_rate). Diverged runs count as
the worst outcome. The tests and effect measures are in `inference`, the power behind
"inconclusive" in `power`, and the verdict rule in `evaluate`; all hypotheses of an experiment
are Holm-corrected together.

Entry points: `spec.parse_hypotheses(cfg)` (validation, called by `optiscope.config`),
`evaluate.verify_store(store_path, config_text=None, *, config=None) -> list[Verdict]`
(`optiscope verify`, the report's verdicts section, the studies).
"""

from optiscope.hypotheses.spec import Hypothesis, parse_hypotheses

__all__ = ["Hypothesis", "parse_hypotheses"]
