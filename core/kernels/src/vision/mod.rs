//! Sampling and scattering operators of vision models: GridSample, RoiAlign, Col2Im,
//! DeformConv, MaxUnpool.
mod col2im;
mod deform_conv;
mod grid_sample;
mod roi_align;
mod unpool;

pub use col2im::{col2im_f32, Col2Im};
pub use deform_conv::{deform_conv_f32, DeformConv};
pub use grid_sample::{
    grid_sample_dims, grid_sample_f32, grid_sample_reference, GridSample, Interp, Padding,
};
pub use roi_align::{roi_align_f32, RoiAlign};
pub use unpool::max_unpool;

#[cfg(test)]
mod tests;
