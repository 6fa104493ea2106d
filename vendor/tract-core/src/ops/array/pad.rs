use crate::internal::*;

/// How a padded region is filled. A `Constant` value carries a single element
/// in the datum type the model builder gave it, f32 for a float graph, and no
/// pass retypes it: a consumer casts it to the datum type of the tensor it pads.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PadMode {
    Constant(Arc<Tensor>),
    Reflect,
    Edge,
}

impl Default for PadMode {
    fn default() -> PadMode {
        PadMode::Constant(Arc::new(0.0f32.into()))
    }
}

#[derive(Debug, Clone, new, Default, Hash, PartialEq, Eq)]
pub struct Pad {
    pub pads: Vec<(usize, usize)>,
    pub mode: PadMode,
}

impl Pad {
    fn eval_t<T>(&self, input_tensor: TValue) -> TractResult<TValue>
    where
        T: Copy + Datum,
    {
        use tract_ndarray::*;
        // `TRACT_DISABLE_FAST_PAD=1` keeps the generic path (A/B comparisons, and the tests that
        // compare both).
        let fast = !crate::ops::patch_switch::is_on("TRACT_DISABLE_FAST_PAD");
        if let PadMode::Constant(value) = &self.mode {
            if fast && input_tensor.rank() > 0 {
                let value = value.cast_to_scalar::<T>()?;
                return Ok(self.eval_constant_rows(&input_tensor, value)?.into_tvalue());
            }
        }
        let input = input_tensor.to_plain_array_view::<T>()?;
        let output_shape: Vec<usize> =
            input.shape().iter().zip(self.pads.iter()).map(|(&d, &(a, b))| d + a + b).collect();
        let element = match &self.mode {
            PadMode::Constant(f) => f.cast_to_scalar::<T>()?,
            _ => T::default(),
        };
        let mut output = ArrayD::<T>::from_elem(output_shape, element);
        let slice_spec: Vec<SliceInfoElem> = self
            .pads
            .iter()
            .map(|&(a, b)| SliceInfoElem::Slice {
                start: a as isize,
                end: if b != 0 { Some(-(b as isize)) } else { None },
                step: 1,
            })
            .collect();
        let slice_info = SliceInfo::<_, IxDyn, IxDyn>::try_from(slice_spec).unwrap();
        output.slice_mut(slice_info.as_ref()).assign(&input);
        if self.mode == PadMode::Reflect || self.mode == PadMode::Edge {
            for (ax, &(bef, aft)) in self.pads.iter().enumerate() {
                let axis = Axis(ax);
                let dim = output.shape()[ax];
                {
                    let (mut pad, data) = output.view_mut().split_at(axis, bef);
                    for i in 0..bef {
                        let mut target = pad.slice_axis_mut(axis, Slice::from(i..i + 1));
                        let source_slice = match self.mode {
                            PadMode::Edge => 0,
                            PadMode::Reflect => bef - i,
                            _ => panic!(),
                        };
                        let source =
                            data.slice_axis(axis, Slice::from(source_slice..source_slice + 1));
                        target.assign(&source);
                    }
                }
                {
                    let (data, mut pad) = output.view_mut().split_at(axis, dim - aft);
                    for i in 0..aft {
                        let mut target = pad.slice_axis_mut(axis, Slice::from(i..i + 1));
                        let source_slice = match self.mode {
                            PadMode::Edge => dim - aft - 1,
                            PadMode::Reflect => dim - aft - 2 - i,
                            _ => panic!(),
                        };
                        let source =
                            data.slice_axis(axis, Slice::from(source_slice..source_slice + 1));
                        target.assign(&source);
                    }
                }
            }
        }
        let mut output = output.into_tensor();
        unsafe { output.set_datum_type(input_tensor.datum_type()) }
        Ok(output.into_tvalue())
    }
}

impl Pad {
    /// fuseprint patch: constant padding row by row along the last axis, rows split over
    /// tract's executor. Each output row is all padding (outside the input along an outer
    /// axis) or padding, a copy of one input row, padding. The generic path above fills the
    /// whole output with the constant on one thread, then assigns the input through a strided
    /// view, also on one thread: on a 192³ volume that was 24 ms a Pad, and fuseprint's
    /// `ct_bone` graph has 85 of them (its max/min filters pad before slicing).
    fn eval_constant_rows<T: Copy + Datum>(&self, input: &Tensor, value: T) -> TractResult<Tensor> {
        let in_shape: TVec<usize> = input.shape().into();
        let rank = in_shape.len();
        ensure!(
            self.pads.len() == rank,
            "Pad: {} pads for a tensor of rank {rank}",
            self.pads.len()
        );
        let out_shape: TVec<usize> = in_shape
            .iter()
            .zip(&self.pads)
            .map(|(d, (b, a))| d + b + a)
            .collect();
        // The input's datum type: a quantised input's output keeps its parameters, as on the
        // generic path. SAFETY: every value is written below (each row is filled or copied
        // whole) before the tensor is read; `T: Copy` has no drop glue.
        let mut output = unsafe { Tensor::uninitialized_dt(input.datum_type(), &out_shape)? };
        let out_len = output.len();
        let out_w = out_shape[rank - 1];
        if out_len == 0 || out_w == 0 {
            return Ok(output);
        }
        let in_w = in_shape[rank - 1];
        let (before_w, _) = self.pads[rank - 1];
        let input_view = input.try_as_plain_ram()?;
        let src = input_view.as_slice::<T>()?;
        let mut output_view = output.try_as_plain_ram_mut()?;
        let dst = output_view.as_slice_mut::<T>()?;
        tract_linalg::multithread::par_chunks_mut(dst, out_w, out_len, |first_row, rows| {
            for (k, row) in rows.chunks_mut(out_w).enumerate() {
                match self.input_row(&in_shape, &out_shape, first_row + k) {
                    Some(r) => {
                        row[..before_w].fill(value);
                        row[before_w..before_w + in_w].copy_from_slice(&src[r * in_w..][..in_w]);
                        row[before_w + in_w..].fill(value);
                    }
                    None => row.fill(value),
                }
            }
            Ok(())
        })?;
        drop(output_view);
        Ok(output)
    }

    /// The input row (index over every axis but the last) that output row `row` holds, or
    /// `None` when that row lies in the padding of an outer axis.
    fn input_row(&self, in_shape: &[usize], out_shape: &[usize], row: usize) -> Option<usize> {
        let rank = in_shape.len();
        let mut rest = row;
        let mut index = 0;
        let mut stride = 1;
        for axis in (0..rank - 1).rev() {
            let at = rest % out_shape[axis];
            rest /= out_shape[axis];
            let inside = at
                .checked_sub(self.pads[axis].0)
                .filter(|i| *i < in_shape[axis])?;
            index += inside * stride;
            stride *= in_shape[axis];
        }
        Some(index)
    }
}

impl Op for Pad {
    fn name(&self) -> StaticName {
        "Pad".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("Mode: {:?}, pads: {:?})", self.mode, self.pads,)])
    }

    op_as_typed_op!();
}

impl EvalOp for Pad {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        Ok(tvec!(dispatch_numbers!(Self::eval_t(input.datum_type())(self, input))?))
    }
}

impl TypedOp for Pad {
    as_op!();

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        let mut fact = inputs[0].without_value();
        if self.pads.len() != fact.rank() {
            bail!("Inconsistent pad: input of rank {}, pads are: {:?}", fact.rank(), self.pads);
        }
        for (ix, (b, e)) in self.pads.iter().enumerate() {
            fact.shape.set(ix, fact.shape[ix].clone() + *b + *e);
        }
        Ok(tvec!(fact))
    }

    fn input_roi(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TVec<Option<TDim>>>> {
        let output_fact = model.outlet_fact(OutletId::new(node.id, 0))?;
        rule_if_some!(roi = &output_fact.region_of_interest);
        // For each padded axis, substitute 🎯axis → 🎯axis - before
        let mut input_roi = roi.clone();
        for (axis, &(before, _)) in self.pads.iter().enumerate() {
            if before == 0 {
                continue;
            }
            if let Some(sym) = input_roi
                .symbols()
                .into_iter()
                .find(|s| crate::ops::logic::sym_to_coord_axis(s) == Some(axis))
            {
                let shifted = TDim::Sym(sym.clone()) - TDim::Val(before as i64);
                input_roi = input_roi.substitute(&sym, &shifted).unwrap_or(input_roi);
            }
        }
        Ok(Some(tvec![Some(input_roi)]))
    }

    fn axes_mapping(
        &self,
        inputs: &[&TypedFact],
        outputs: &[&TypedFact],
    ) -> TractResult<AxesMapping> {
        let mut result = AxesMapping::disconnected(inputs, outputs)?;
        for (ix, pads) in self.pads.iter().enumerate() {
            if pads == &(0, 0) {
                result = result.linking((InOut::In(0), ix), (InOut::Out(0), ix))?;
            }
        }
        Ok(result)
    }

    fn change_axes(
        &self,
        model: &TypedModel,
        node: &TypedNode,
        io: InOut,
        change: &AxisOp,
    ) -> TractResult<Option<AxisChangeConsequence>> {
        let mut new_op = self.clone();
        if let (InOut::In(0), AxisOp::Rm(ix)) = (io, change)
            && new_op.pads.remove(*ix) == (0, 0)
        {
            return Ok(Some(AxisChangeConsequence::new(
                model,
                node,
                Some(Box::new(new_op)),
                change,
            )));
        }
        if let (InOut::In(0), AxisOp::Add(ix)) = (io, change) {
            new_op.pads.insert(*ix, (0, 0));
            return Ok(Some(AxisChangeConsequence::new(
                model,
                node,
                Some(Box::new(new_op)),
                change,
            )));
        }
        Ok(None)
    }

    fn declutter(
        &self,
        model: &TypedModel,
        node: &TypedNode,
    ) -> TractResult<Option<TypedModelPatch>> {
        if self.pads.iter().all(|p| p.0 == 0 && p.1 == 0) {
            TypedModelPatch::shunt_one_op(model, node)
        } else {
            Ok(None)
        }
    }
}
