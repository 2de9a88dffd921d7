# Training as a chain of file targets: one rule per (size, segment of the checkpoint schedule).
# Segment (a, b] resumes from checkpoint a and declares the checkpoints inside (a, b] as outputs,
# so Snakemake restarts a model from its last finished segment after any failure.


# The segments and their rule names: workflow/plan/jobs.py (SuiteJobs.train), also the plan's.
for _job in JOBS.train:

    rule:
        name:
            _job.rule
        input:
            samples=samples_files(_job.variant),
            tokenizer=run_path("data", "tokenizer", "tokenizer.json"),
            resume=[_job.resume] if _job.resume else [],
            # lm-eval's own eval tasks exist (rules/eval.smk), checked before training
            eval_tasks=(
                [run_path("evals", "tasks", "known.json")]
                if _job.segment.start < 0 and JOBS.remote_tasks
                else []
            ),
        output:
            [directory(c) for c in _job.outputs()],
            metrics=(
                run_path(
                    "models",
                    _job.variant,
                    _job.size,
                    "train_log",
                    f"steps{_job.first_step + 1}-{_job.segment.end}.csv",
                )
                if _job.segment.end > 0
                else []
            ),
        log:
            run_path(
                "logs",
                "train",
                _job.variant,
                _job.size,
                f"segment{_job.first_step}-{_job.segment.end}.log",
            ),
        conda:
            "../envs/train-gpu.yaml"
        threads: SUITE.training.threads
        resources:
            # GPUs, nodes, CPUs, memory and time limit from the model size (workflow/plan/resources.py)
            **train_resources(
                SUITE, SUITE.models[_job.size], _job.segment.start, _job.segment.end
            ),
        params:
            config_hash=MODEL_HASHES[_job.size, _job.variant],
            size=_job.size,
            variant=_job.variant,
            start=_job.segment.start,
            end=_job.segment.end,
            steps=list(_job.segment.steps),
            keep_state=list(_job.segment.keep_state),
            # a function, so "{step}" stays a template for the script
            out_template=lambda wc, path=checkpoint_dir(
                _job.variant, _job.size, "{step}"
            ): path,
        script:
            "../scripts/train/train_segment.py"
