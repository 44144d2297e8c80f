fn main() {
    let args: Vec<String> = std::env::args().collect();
    let src = std::fs::read_to_string(&args[1]).unwrap();
    let r = promqltest::run_script("dbg.test", &src, promqltest::Checks::default());
    promqltest::print_report(&r);
}
