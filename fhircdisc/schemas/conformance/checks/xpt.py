"""SAS XPORT v5 limits, via the writer's own :func:`~fhircdisc.converters.xpt.check_xpt_v5`."""

from __future__ import annotations

from collections.abc import Iterator

from fhircdisc.converters.xpt import check_xpt_v5
from fhircdisc.schemas import sdtmig
from fhircdisc.schemas.columns import ColumnMeta, DatasetMeta
from fhircdisc.schemas.conformance.checks.metadata import actual_type
from fhircdisc.schemas.conformance.checks.registry import check
from fhircdisc.schemas.conformance.context import Dataset, Hit, Params, Study


def _meta(ds: Dataset) -> DatasetMeta:
    """The dataset's metadata; without it, SDTMIG labels and the types the values show."""
    if ds.meta is not None:
        return ds.meta
    labels = {v.name: v.label for v in sdtmig.variables().get(ds.ig_name or "", [])}
    columns = tuple(ColumnMeta(name=str(c), label=labels.get(str(c), ""),
                               type="Num" if actual_type(ds, str(c)) == "Num" else "Char")
                    for c in ds.df.columns)
    label = sdtmig.dataset_labels().get(ds.ig_name or "", "")
    return DatasetMeta(ds.name, label, columns)


@check("xpt_v5_limits", fields=("problem",))
def xpt_v5_limits(ds: Dataset, p: Params, study: Study) -> Iterator[Hit]:
    """Names <= 8, labels <= 40, Char values <= 200 bytes, ASCII, Num representable."""
    for v in check_xpt_v5(ds.df, _meta(ds), distinct=ds.values):
        value = ds.df[v.variable].iat[v.row - 1] if v.row is not None and v.variable else None
        yield Hit(row=None if v.row is None else v.row - 1, variable=v.variable, value=value,
                  fields={"problem": v.message})
