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
    params:
        baseline=STUDY.baseline,
    log:
        "logs/aggregate_runs/aggregate_runs.log",
    script:
        "../scripts/aggregate_runs.py"


rule plot_figures:
    input:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
        rankings="results/tables/rankings.csv",
        histories=get_run_files("history.csv"),
        weights=get_run_files("weights.npz"),
    output:
        directory("results/figures"),
    params:
        baseline=STUDY.baseline,
        runs_dir="results/runs",
    log:
        "logs/plot_figures/plot_figures.log",
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
    params:
        study=get_report_study,
        skipped=get_skipped_json,
    log:
        "logs/render_report/render_report.log",
    script:
        "../scripts/render_report.py"
