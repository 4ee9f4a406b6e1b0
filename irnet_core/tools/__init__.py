"""Tools that write inputs for the workflow rather than read them: :mod:`.demo_generator`, the synthetic demo
dataset (rule ``make_demo_dataset``, also ``python -m irnet_core.tools.demo_generator``).

A tool sits above the dataset layer (:mod:`irnet_core.data`), whose formats it writes, and no stage imports it.
"""
