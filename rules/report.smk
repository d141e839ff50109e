from regbench.jobs import figure_settings


rule aggregate_runs:
    input:
        cells=get_cell_records,
        cards=get_dataset_cards,
    output:
        runs=report(
            "results/tables/runs.csv",
            caption="../templates/captions/runs.rst",
            category="Tables",
        ),
        summary=report(
            "results/tables/summary.csv",
            caption="../templates/captions/summary.rst",
            category="Tables",
        ),
        comparisons=report(
            "results/tables/comparisons.csv",
            caption="../templates/captions/comparisons.rst",
            category="Tables",
        ),
        rankings=report(
            "results/tables/rankings.csv",
            caption="../templates/captions/rankings.rst",
            category="Tables",
        ),
        ranking_tests=report(
            "results/tables/ranking_tests.csv",
            caption="../templates/captions/ranking_tests.rst",
            category="Tables",
        ),
        adequacy=report(
            "results/tables/adequacy.csv",
            caption="../templates/captions/adequacy.rst",
            category="Tables",
        ),
        references=report(
            "results/tables/references.csv",
            caption="../templates/captions/references.rst",
            category="Tables",
        ),
        dose_response=report(
            "results/tables/dose_response.csv",
            caption="../templates/captions/dose_response.rst",
            category="Tables",
        ),
        tuned=report(
            "results/tables/tuned.csv",
            caption="../templates/captions/tuned.rst",
            category="Tables",
        ),
        tuned_comparisons=report(
            "results/tables/tuned_comparisons.csv",
            caption="../templates/captions/tuned_comparisons.rst",
            category="Tables",
        ),
        architectures="results/tables/architectures.json",
    log:
        "logs/aggregate_runs/aggregate_runs.log",
    conda:
        "../envs/regbench.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        # Baseline, report metrics, references, epochs, sweep families and the
        # tuning criterion: none of it reaches a run's spec, so changing it
        # reruns the tables onwards and never training.
        settings=canonical_json(STUDY.aggregation_settings()),
        runs=[key.path for key in STUDY.runs],
    script:
        "../scripts/aggregate_runs.py"


rule plot_figures:
    input:
        runs="results/tables/runs.csv",
        comparisons="results/tables/comparisons.csv",
        rankings="results/tables/rankings.csv",
        dose_response="results/tables/dose_response.csv",
    # The runs' histories and weights are read from results/runs by the runs the
    # tables name; the tables are rewritten whenever any run changes.
    output:
        directory("results/figures"),
    log:
        "logs/plot_figures/plot_figures.log",
    conda:
        "../envs/regbench.yaml"
    resources:
        mem_mb=1000,
        runtime=15,
    params:
        settings=figure_settings(STUDY.config),
    script:
        "../scripts/plot_figures.py"


rule render_report:
    input:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
        comparisons="results/tables/comparisons.csv",
        rankings="results/tables/rankings.csv",
        ranking_tests="results/tables/ranking_tests.csv",
        adequacy="results/tables/adequacy.csv",
        references="results/tables/references.csv",
        dose_response="results/tables/dose_response.csv",
        tuned="results/tables/tuned.csv",
        tuned_comparisons="results/tables/tuned_comparisons.csv",
        architectures="results/tables/architectures.json",
        cards=get_dataset_cards,
        figures="results/figures",
        template=workflow.source_path("../templates/report.html.j2"),
        stylesheet=workflow.source_path("../templates/report.css"),
    output:
        html=report(
            "reports/report.html",
            caption="../templates/captions/report.rst",
            category="Report",
        ),
        pdf=report(
            "reports/report.pdf",
            caption="../templates/captions/report.rst",
            category="Report",
        ),
        figures=report(
            directory("reports/figures"),
            patterns=["{kind}/{dataset}/{model}.svg"],
            caption="../templates/captions/figure.rst",
            category="Figures",
            labels={"figure": "{kind}", "dataset": "{dataset}", "model": "{model}"},
        ),
    log:
        "logs/render_report/render_report.log",
    conda:
        "../envs/regbench.yaml"
    resources:
        mem_mb=2000,
        runtime=15,
    params:
        study=get_report_study,
        commit=PROJECT_COMMIT,
        config_commit=CONFIG_COMMIT,
        skipped=get_skipped_json,
    script:
        "../scripts/render_report.py"
