//! The `tessera` command.

fn main() {
    println!("tessera");
}
