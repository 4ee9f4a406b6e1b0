# Dataset stage: the synthetic demo dataset (only when dataset.root is the demo folder) and the validated
# image-level labels of the training list.


if IS_DEMO:

    rule make_demo_dataset:
        # Deterministic synthetic data in the exact VOC 2012 layout; ground truth is read only by evaluation.
        output:
            **demo_outputs(),
            **demo_val_list(),
            train_aug=f"{DEMO_ROOT}/ImageSets/Segmentation/train_aug.txt",
            train=f"{DEMO_ROOT}/ImageSets/Segmentation/train.txt",
        log:
            "logs/make_demo_dataset/make_demo_dataset.log",
        benchmark:
            "benchmarks/make_demo_dataset/make_demo_dataset.tsv"
        conda:
            "../environment.yml"
        threads: 2
        resources:
            mem_mb=2000,
            runtime=30,
        params:
            demo=config["demo"],
            classes=config["dataset"]["classes"],
        script:
            "../workflow_scripts/make_demo_dataset.py"


rule prepare_dataset:
    # Image-level labels and sizes of the training images; stops on unreadable images, unknown class names and
    # training images without any label.
    input:
        images=train_images(),
        labels=train_label_files(),
    output:
        labels="results/dataset/labels.json",
    log:
        "logs/prepare_dataset/prepare_dataset.log",
    benchmark:
        "benchmarks/prepare_dataset/prepare_dataset.tsv"
    conda:
        "../environment.yml"
    threads: 4
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        dataset=dataset_params(),
        image_ids=TRAIN_IDS,
    script:
        "../workflow_scripts/prepare_dataset.py"
