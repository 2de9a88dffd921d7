# Training as a chain of file targets: one rule per (size, segment of the checkpoint schedule).
# Segment (a, b] resumes from checkpoint a and declares the checkpoints inside (a, b] as outputs,
# so Snakemake restarts a model from its last finished segment after any failure.


from workflow.core.identity import config_hash

if config["checkpoints"]["source"] == "trained":

    for _size, _spec in SUITE.models.items():
        for _seg in SUITE.segments(_size):
            _tag = rule_tag(_size)

            rule:
                name:
                    f"train_{_tag}_{max(_seg.start, 0)}_{_seg.end}"
                    if _seg.start >= 0
                    else f"init_{_tag}"
                input:
                    samples=samples_files(),
                    tokenizer=run_path("data", "tokenizer", "tokenizer.json"),
                    resume=(
                        [checkpoint_dir("{variant}", _size, _seg.start)]
                        if _seg.start >= 0
                        else []
                    ),
                    # lm-eval's own eval tasks exist (rules/eval.smk), checked before training
                    eval_tasks=(
                        (
                            lambda wc: (
                                [run_path("evals", "tasks", "known.json")]
                                if REMOTE_TASKS
                                else []
                            )
                        )
                        if _seg.start < 0
                        else []
                    ),
                output:
                    [
                        directory(checkpoint_dir("{variant}", _size, s))
                        for s in _seg.steps
                    ],
                    metrics=(
                        run_path(
                            "models",
                            "{variant}",
                            _size,
                            "train_log",
                            f"steps{_seg.start + 1}-{_seg.end}.csv",
                        )
                        if _seg.start >= 0
                        else []
                    ),
                log:
                    run_path(
                        "logs",
                        "train",
                        "{variant}",
                        _size,
                        f"segment{_seg.start}-{_seg.end}.log",
                    ),
                conda:
                    "../envs/train-gpu.yaml"
                threads: SUITE.training.threads
                resources:
                    # GPUs, nodes, CPUs, memory and time limit from the model size (workflow/compute.py)
                    **train_resources(SUITE, _spec, _seg.start, _seg.end),
                params:
                    # what the weights depend on (hyperparameters, seed): a change reruns the
                    # segment and everything downstream instead of keeping old checkpoints
                    config_hash=config_hash(_spec, SUITE.training),
                    size=_size,
                    start=_seg.start,
                    end=_seg.end,
                    steps=list(_seg.steps),
                    # a function, so "{step}" stays a template for the script
                    out_template=lambda wc, size=_size: checkpoint_dir(
                        wc.variant, size, "{step}"
                    ),
                script:
                    "../scripts/train/train_segment.py"
