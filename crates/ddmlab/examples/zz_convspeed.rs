use burn::tensor::{Device, Distribution, Tensor};
use ddmlab::data::ImageShape;
use ddmlab::models::conv_ae::ConvAeConfig;
fn main() {
    let args: Vec<usize> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let (ch, levels, b, size) = (args[0], args[1], args[2], args[3]);
    let mult: Vec<usize> = (0..levels).map(|i| if i == 0 { 1 } else { 2 }).collect();
    let cfg = ConvAeConfig {
        image: ImageShape { channels: 1, height: size, width: size },
        channels: ch,
        channel_mult: mult,
        res_blocks: 1,
        z_channels: 2,
        groups: 8,
    };
    let dev = Device::flex().autodiff();
    let ae = cfg.init(&dev);
    for i in 0..4 {
        let t = std::time::Instant::now();
        let x = Tensor::<4>::random([b, 1, size, size], Distribution::Normal(0.0, 1.0), &dev);
        let p = ae.encode(x.clone());
        let y = ae.decode(p.mean.clone());
        let loss = (y - x).abs().mean() + p.kl().mean() * 1e-6;
        let g = loss.backward();
        let _ = g;
        println!("iter {i}: {:.3}s  {:.0} img/s", t.elapsed().as_secs_f64(), b as f64 / t.elapsed().as_secs_f64());
    }
}
