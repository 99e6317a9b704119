//! Pictures a user looks at: PNG image grids and line plots.

pub mod denoise;
pub mod grid;
pub mod pca;
pub mod plot;
