use crate::internal::*;
use crate::num_traits::Zero;

#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Slice {
    pub axis: usize,
    pub start: TDim,
    pub end: TDim,
}

impl Slice {
    pub fn new(axis: usize, start: impl ToDim, end: impl ToDim) -> Slice {
        Slice { axis, start: start.to_dim(), end: end.to_dim() }
    }

    pub fn suffix(&self, name: &str) -> String {
        format!("{}.axis{}_{}_{}", name, self.axis, self.start, self.end)
    }

    pub fn declutter_slice_after_slice(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        let prec = model.node(node.inputs[0].node);
        if let Some(other) = prec.op_as::<Slice>()
            && other.axis == self.axis
        {
            return TypedModelPatch::replace_single_op(
                model,
                node,
                &prec.inputs,
                Slice {
                    axis: self.axis,
                    start: self.start.clone() + &other.start,
                    end: self.end.clone() + &other.start,
                },
            )
            .map(Some);
        }
        Ok(None)
    }
}

impl Op for Slice {
    fn name(&self) -> StaticName {
        "Slice".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("axis: {}, {}..{}", self.axis, self.start, self.end)])
    }

    op_as_typed_op!();
}

impl EvalOp for Slice {
    op_out_of_plan!();

    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let start = self.start.eval(ctx.symbols).to_usize()?;
        let end = self.end.eval(ctx.symbols).to_usize()?;
        eval_slice(&input, self.axis, start, end)
    }
}

fn eval_slice(input: &Tensor, axis: usize, start: usize, end: usize) -> TractResult<TVec<TValue>> {
    if end > input.shape()[axis] || start > end {
        bail!("Invalid range {}..{} for slicing {:?} on axis {}", start, end, input, axis);
    }
    // `TRACT_DISABLE_FAST_SLICE=1` keeps tract's copy (A/B comparisons, and the tests that
    // compare both).
    let fast = !crate::ops::patch_switch::is_on("TRACT_DISABLE_FAST_SLICE");
    if fast && input.datum_type().is_copy() {
        if let Some(sliced) = slice_rows(input, axis, start, end)? {
            return Ok(tvec!(sliced.into_tvalue()));
        }
    }
    unsafe {
        let mut shape: TVec<_> = input.shape().into();
        shape[axis] = end - start;
        let mut tensor = Tensor::uninitialized_dt(input.datum_type(), &shape)?;
        tensor.assign_slice_unchecked(.., input, start..end, axis);
        Ok(tvec!(tensor.into_tvalue()))
    }
}

/// fuseprint patch: `start..end` along `axis` of a plain tensor of plain-old-data values, copied
/// as bytes, split over tract's executor. The output is `outer` rows (the product of the dims
/// before `axis`), each a contiguous run of the input; the pieces the executor hands out are
/// byte ranges of the output, which may cross rows. tract's own copy runs on one thread into
/// fresh pages: 273 Slices were 1.7 s of the 7.7 s fuseprint's `ct_bone` graph took on a 192³
/// grid. `None` when the storage is not plain (the generic path copies it).
fn slice_rows(
    input: &Tensor,
    axis: usize,
    start: usize,
    end: usize,
) -> TractResult<Option<Tensor>> {
    let Some(storage) = input.as_plain_ram_storage() else {
        return Ok(None);
    };
    let src = storage.as_bytes();
    let shape = input.shape();
    let inner = shape[axis + 1..].iter().product::<usize>() * input.datum_type().size_of();
    let in_row = shape[axis] * inner;
    let out_row = (end - start) * inner;
    let mut out_shape: TVec<usize> = shape.into();
    out_shape[axis] = end - start;
    // SAFETY: every byte is copied below before the tensor is read; the type is plain data.
    let mut output = unsafe { Tensor::uninitialized_dt(input.datum_type(), &out_shape)? };
    let Some(out_storage) = output.as_plain_ram_storage_mut() else {
        return Ok(None);
    };
    let dst = out_storage.as_bytes_mut();
    if dst.is_empty() {
        return Ok(Some(output));
    }
    ensure!(
        src.len() == dst.len() / out_row * in_row,
        "Slice: {} input bytes for {} output rows of {in_row}",
        src.len(),
        dst.len() / out_row
    );
    let total = dst.len();
    tract_linalg::multithread::par_chunks_mut(dst, 1, total, |first, piece| {
        let mut at = first;
        let mut done = 0;
        while done < piece.len() {
            let (row, within) = (at / out_row, at % out_row);
            let len = (out_row - within).min(piece.len() - done);
            let from = row * in_row + start * inner + within;
            piece[done..done + len].copy_from_slice(&src[from..from + len]);
            done += len;
            at += len;
        }
        Ok(())
    })?;
    Ok(Some(output))
}

impl TypedOp for Slice {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        anyhow::ensure!(inputs.len() == 1, "Slice has one single input");
        if let (Some(start), Some(end), Some(len)) =
            (self.start.as_usize(), self.end.as_usize(), inputs[0].shape[self.axis].as_usize())
        {
            ensure!(start <= end);
            ensure!(end <= len);
        }
        let mut fact = inputs[0].without_value();
        fact.shape.set(self.axis, (self.end.clone() - &self.start).to_dim());
        Ok(tvec!(fact))
    }

    fn input_roi(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TVec<Option<TDim>>>> {
        let output_fact = model.outlet_fact(OutletId::new(node.id, 0))?;
        rule_if_some!(roi = &output_fact.region_of_interest);
        if self.start.is_zero() {
            return Ok(Some(tvec![Some(roi.clone())]));
        }
        // Remap: output 🎯axis = input 🎯axis - start, so substitute 🎯axis → 🎯axis + start
        if let Some(sym) = roi
            .symbols()
            .into_iter()
            .find(|s| crate::ops::logic::sym_to_coord_axis(s) == Some(self.axis))
        {
            let shifted = TDim::Sym(sym.clone()) + self.start.clone();
            if let Ok(input_roi) = roi.substitute(&sym, &shifted) {
                return Ok(Some(tvec![Some(input_roi)]));
            }
        }
        // ROI doesn't mention the sliced axis — pass through unchanged
        Ok(Some(tvec![Some(roi.clone())]))
    }

    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        let mut mapping = AxesMapping::disconnected(inputs, outputs)?;
        for (axis, repr) in (0..inputs[0].rank()).zip('a'..) {
            if self.axis != axis {
                mapping = mapping
                    .renaming((InOut::In(0), axis), repr)?
                    .linking(repr, (InOut::Out(0), axis))?;
            }
        }
        Ok(mapping)
    }

    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        _io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        if let Some(axis) = change.transform_axis(self.axis) {
            if axis != self.axis {
                Ok(Some(AxisChangeConsequence::new(
                    model,
                    node,
                    Some(Box::new(Slice { axis, ..self.clone() }) as _),
                    change,
                )))
            } else {
                Ok(Some(AxisChangeConsequence::new(model, node, None, change)))
            }
        } else {
            Ok(None)
        }
    }

    fn declutter(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        if self.start.is_zero() && (self.end == model.outlet_fact(node.inputs[0])?.shape[self.axis])
        {
            TypedModelPatch::shunt_one_op(model, node)
        } else if let Some(p) = self.declutter_slice_after_slice(model, node)? {
            Ok(Some(p))
        } else {
            Ok(None)
        }
    }

    fn set_symbols(
        &self,
        _source: &TypedModel,
        node: &TypedNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
        subs: &HashMap<Symbol, TDim>,
    ) -> TractResult<TVec<OutletId>> {
        let op = Slice {
            axis: self.axis,
            start: self.start.substitute_all(subs)?,
            end: self.end.substitute_all(subs)?,
        };
        let inputs = node.inputs.iter().map(|i| mapping[i]).collect::<TVec<_>>();
        target.wire_node(&node.name, op, &inputs)
    }

    fn slice(
        &self,
        patch: &mut TypedModelPatch,
        _model: &TypedModel,
        node: &TypedNode,
        _prefix: &str,
        inputs: &[OutletId],
        _output_axis: usize,
        _start: &TDim,
        _end: &TDim,
    ) -> TractResult<Option<TVec<OutletId>>> {
        patch.wire_node(&node.name, &node.op, inputs).map(Some)
    }

    as_op!();
}
