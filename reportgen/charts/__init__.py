"""Chart builders: plain data in, Altair charts out (DESIGN.md 1 and 4).

The chart stage is a leaf: its modules take arrays, records and strings, and import nothing
from the rest of reportgen, so that analyses may offer a chart of their results (analysis ->
charts) without charts ever needing the analyses' types back. Non-finite numbers become null
(`finite_or_none`), since JSON has no NaN. Nothing here writes a page: the site embeds
`chart.to_dict()`. Every public builder and constant is importable from `reportgen.charts`.
"""

from reportgen.charts.agreement import (
                                        agreement_accuracy_chart,
                                        agreement_against_dropout_chart,
                                        screen_against_ablation_chart,
                                        unit_template_chart,
)
from reportgen.charts.dropout import (
                                        KL_SCORE_TITLE,
                                        against_dropout,
                                        faceted,
                                        kl_boxes,
                                        kl_score_boxes_chart,
                                        mean_abs_against_dropout_chart,
                                        near_zero_against_dropout_chart,
                                        perplexity_against_dropout_chart,
)
from reportgen.charts.dynamics import (
                                        GATE_TITLES,
                                        TRACE_POINTS,
                                        TRACE_SPANS,
                                        activation_trace_chart,
                                        gate_saturation_chart,
                                        time_constant_chart,
                                        trace_columns,
                                        trace_layers,
                                        trace_title,
)
from reportgen.charts.finite import finite_or_none
from reportgen.charts.histograms import (
                                        AVERAGE,
                                        MAX_BARS,
                                        average_distribution_chart,
                                        binned_records,
                                        histogram_domain,
                                        neuron_histogram_chart,
)
from reportgen.charts.kl_concepts import KL_COLOURS, KL_KINDS, concept_auroc_chart, kl_scatter_chart
from reportgen.charts.maps import (
                                        CANVAS_ABOVE,
                                        CLUSTER_COLOURS,
                                        CUT_PARAM,
                                        HIGHLIGHT_PARAM,
                                        LINKAGE_PARAM,
                                        MAP_DECIMALS,
                                        MIN_SIZE_PARAM,
                                        STATE_PARAM,
                                        cluster_explorer_chart,
                                        cut_label,
                                        embedding_chart,
)
from reportgen.charts.similarity import matched_correlation_chart, similarity_matrix_chart
from reportgen.charts.sizes import HEIGHT, SMALL_PANEL, WIDTH
from reportgen.charts.unit_effects import ablation_feature_chart, output_weights_chart

__all__ = [
    "agreement_accuracy_chart", "agreement_against_dropout_chart",
    "screen_against_ablation_chart", "unit_template_chart",
    "AVERAGE", "CANVAS_ABOVE", "CLUSTER_COLOURS", "CUT_PARAM", "GATE_TITLES", "HEIGHT",
    "HIGHLIGHT_PARAM", "KL_COLOURS", "KL_KINDS", "KL_SCORE_TITLE", "LINKAGE_PARAM", "MAP_DECIMALS",
    "MAX_BARS", "MIN_SIZE_PARAM", "SMALL_PANEL", "STATE_PARAM", "TRACE_POINTS", "TRACE_SPANS",
    "WIDTH", "ablation_feature_chart", "activation_trace_chart", "against_dropout",
    "average_distribution_chart", "binned_records", "cluster_explorer_chart",
    "concept_auroc_chart", "cut_label", "embedding_chart", "faceted", "finite_or_none",
    "gate_saturation_chart", "histogram_domain", "kl_boxes", "kl_scatter_chart",
    "kl_score_boxes_chart", "matched_correlation_chart", "mean_abs_against_dropout_chart",
    "near_zero_against_dropout_chart", "neuron_histogram_chart", "output_weights_chart",
    "perplexity_against_dropout_chart", "similarity_matrix_chart", "time_constant_chart",
    "trace_columns", "trace_layers", "trace_title",
]
