//! The `tessera` command.

mod image;

fn main() {
    println!("tessera");
}
