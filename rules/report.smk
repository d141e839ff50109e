rule aggregate_runs:
    input:
        metrics=get_run_metrics,
    output:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
    log:
        "logs/aggregate_runs/aggregate_runs.log",
    script:
        "../scripts/aggregate_runs.py"


rule plot_figures:
    input:
        runs="results/tables/runs.csv",
        summary="results/tables/summary.csv",
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
