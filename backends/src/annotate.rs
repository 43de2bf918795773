//! Detections drawn on a frame: each box's outline in its class colour, as Darknet's
//! `draw_box_width` draws them.

use tessera_core::detect::Detection;

use crate::pipeline::{class_color, Image, PixelBox};

/// Draws each detection's box on `img` in its class colour, `max(1, h·0.006)` pixels thick,
/// as Darknet's `draw_box_width` does.
pub fn draw(img: &mut Image, dets: &[Detection], classes: u32) {
    if img.w == 0 || img.h == 0 {
        return;
    }
    let width = ((img.h as f32 * 0.006) as i64).max(1);
    for d in dets {
        let b = PixelBox::of(d, img.w, img.h);
        let rgb = class_color(d.class, classes);
        for k in 0..width {
            rect(img, b.left + k, b.top + k, b.right - k, b.bottom - k, rgb);
        }
    }
}

/// One rectangle outline, clipped to the image.
fn rect(img: &mut Image, x1: i64, y1: i64, x2: i64, y2: i64, rgb: [f32; 3]) {
    let (w, h) = (img.w as i64, img.h as i64);
    let mut put = |x: i64, y: i64| {
        if (0..w).contains(&x) && (0..h).contains(&y) {
            for (c, &v) in rgb.iter().enumerate().take(img.c) {
                img.data[(c * img.h + y as usize) * img.w + x as usize] = v;
            }
        }
    };
    for x in x1..=x2 {
        put(x, y1);
        put(x, y2);
    }
    for y in y1..=y2 {
        put(x1, y);
        put(x2, y);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A detection of `class` at centre `(x, y)`, size `w × h` (relative), probability 0.5.
    pub(crate) fn det(class: u16, x: f32, y: f32, w: f32, h: f32) -> Detection {
        Detection {
            x,
            y,
            w,
            h,
            class,
            prob: 0.5,
            objectness: 0.75,
            index: 0,
        }
    }

    #[test]
    fn draws_outlines_only() {
        let mut img = Image::filled(20, 10, 3, 0.5);
        draw(&mut img, &[det(0, 0.5, 0.5, 0.5, 0.5)], 80);
        let at = |x: usize, y: usize, c: usize| img.data[(c * 10 + y) * 20 + x];
        // Box columns 5..=15, rows 2..=7: magenta edges, grey inside and outside.
        assert_eq!((at(5, 5, 0), at(5, 5, 1), at(5, 5, 2)), (1.0, 0.0, 1.0));
        assert_eq!(at(10, 2, 1), 0.0);
        assert_eq!(at(10, 5, 0), 0.5);
        assert_eq!(at(1, 1, 0), 0.5);
    }
}
