"""`rnnkit train classify`: one class per whole sequence (many-to-one, the chapter's 10.4).

A recurrent layer reads each series to its own end (``lengths=``: no padding enters the
result) and a read-out of its outputs - the last state, or the mean or maximum of the
outputs over the valid steps - goes through a linear layer to the classes.

The data are UEA/UCR ``.ts`` files read by :mod:`rnnkit.data.ts_format`: the official
train/test splits of a dataset aeon ships (``--dataset``), or the user's own files
(``--data``, ``--test-data``; without a test file a seeded stratified share of ``--data``
is held out). A seeded stratified ``--val-fraction`` of the training series validates
(it picks the best model; with ``--val-fraction 0`` every training series trains and the
last model is kept); the test split is scored only at the end, by :meth:`finish`
and ``rnnkit eval``. Each input channel is normalised with the mean and standard
deviation of the training series; the statistics, the splits and the files read (with
their SHA-256) are recorded in ``config.json``.

The modules, each importing only those listed before it:

- :mod:`~rnnkit.tasks.classify.model`: :class:`SequenceClassifier`, its read-outs
  (``POOLS``) and :func:`aggregate` (the downsampling);
- :mod:`~rnnkit.tasks.classify.batches`: :func:`pad`, :class:`Split` and the training
  batches (:class:`SeriesBatches`);
- :mod:`~rnnkit.tasks.classify.scoring`: :func:`logits_of`, :func:`predict`,
  :func:`accuracy`, :func:`confusion_matrix`, :func:`confusion_png`;
- :mod:`~rnnkit.tasks.classify.options`: :class:`ClassifyOptions` and the datasets it
  names;
- :mod:`~rnnkit.tasks.classify.rundata`: a run's files, splits and channel statistics,
  and the checks of its ``derived``;
- :mod:`~rnnkit.tasks.classify.task`: :class:`ClassifyTask`, ``rnnkit train classify``.

The package re-exports every name the modules define without a leading underscore.
"""

# Re-exported for the code that imports these names from the package (the task registry,
# rnnkit predict, the exporters, the benchmarks, the tests), hence F401's exemption; the
# package has no __all__, and its API is these names, as the single module's was.
from rnnkit.tasks.classify.batches import SeriesBatches, Split, pad  # noqa: F401
from rnnkit.tasks.classify.model import (  # noqa: F401
    POOLS,
    SequenceClassifier,
    aggregate,
    channel_values,
)
from rnnkit.tasks.classify.options import (  # noqa: F401
    AUTO_STEPS,
    DATASETS,
    DEFAULT_DATASET,
    MISSING,
    TEST_FRACTION,
    ClassifyOptions,
)
from rnnkit.tasks.classify.rundata import (  # noqa: F401
    DERIVED_KEYS,
    aeon_data_dir,
    channel_stats,
    check_derived,
    check_source,
    check_split,
    check_test_fraction_used,
    dataset_files,
    describe_source,
    make_split,
    map_labels,
    read_source,
    stratified,
)
from rnnkit.tasks.classify.scoring import (  # noqa: F401
    EVAL_BATCH,
    ClassIndices,
    accuracy,
    confusion_matrix,
    confusion_png,
    eval_chunks,
    logits_of,
    majority_class,
    predict,
)
from rnnkit.tasks.classify.task import ClassifyTask  # noqa: F401
