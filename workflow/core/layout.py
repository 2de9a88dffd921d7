"""Where a suite's files go: every path under results/{run}/ that a job of the job list
(`workflow.plan.jobs`) writes or that `rule all` asks for. Paths are strings with "/" (Snakemake
targets); an argument may be a wildcard such as "{variant}"."""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_EXTENSIONS = (".bin", ".idx", ".json")  # the packed, shuffled samples of a variant


@dataclass(frozen=True)
class Layout:
    root: str  # results/{run}

    def path(self, *parts) -> str:
        return "/".join([self.root, *map(str, parts)])

    def checkpoint(self, variant, size, step) -> str:
        return self.path("models", variant, size, f"step{step}")

    def samples_prefix(self, variant="{variant}") -> str:
        return self.path("data", variant, "samples")

    def eval_result(self, variant, size, step, shots) -> str:
        return self.path("evals", variant, size, f"step{step}", f"{shots}shot.json")

    def hub_receipt(self, variant, size, first, last) -> str:
        """The receipt of one upload job (its training segment's steps `first`..`last`): every
        branch it published."""
        return self.path("hub", variant, size, f"steps{first}-{last}.json")

    def term_frequency_result(self, variant, size, step) -> str:
        return self.path("term_frequency", "evals", variant, size, f"step{step}.json")

    def continuation(self, variant, size, kind, step) -> str:
        """A checkpoint of an intervention run or its control (`kind`: intervention7,
        control7), beside the model's own steps."""
        return self.path("models", variant, size, kind, f"step{step}")

    def intervention_result(self, size, name, arm, step) -> str:
        return self.path("evals", "intervention", size, name, arm, f"step{step}.json")

    def memorization_analysis(self, variant, size, step) -> str:
        return self.path("memorization", variant, size, f"step{step}.json")

    def figure(self, name, ext) -> str:
        return self.path("figures", f"{name}.{ext}")
