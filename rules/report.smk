from regbench.jobs import figure_settings


rule aggregate_runs:
    input:
        metrics=get_run_files("metrics.json"),
        benchmarks=get_run_benchmarks,
    output:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
        comparisons="results/tables/comparisons.csv",
        rankings="results/tables/rankings.csv",
        architectures="results/tables/architectures.json",
    log:
        "logs/aggregate_runs/aggregate_runs.log",
    conda:
        "../envs/regbench.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        baseline=STUDY.baseline,
        runs=[key.path for key in STUDY.runs],
    script:
        "../scripts/aggregate_runs.py"


rule plot_figures:
    input:
        runs="results/tables/runs.csv",
        comparisons="results/tables/comparisons.csv",
        rankings="results/tables/rankings.csv",
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
        architectures="results/tables/architectures.json",
        cards=get_dataset_cards,
        figures="results/figures",
        template=workflow.source_path("../templates/report.html.j2"),
        stylesheet=workflow.source_path("../templates/report.css"),
    output:
        html="reports/report.html",
        pdf="reports/report.pdf",
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
