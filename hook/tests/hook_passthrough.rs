//! In a hooked binary, what the hook does not own behaves exactly as
//! without it: files, pipes and stdout from coroutines and threads carry
//! the same bytes; sockets used only by plain threads block, time out and
//! report their flags as the kernel does; name lookups in coroutines give
//! the thread's answer; child processes start and talk normally.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use support::{two_workers, within};

fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn file_round_trip(tag: &str) -> Vec<u8> {
    let path = std::env::temp_dir().join(format!("goro-hook-{}-{tag}", std::process::id()));
    let data = pattern(1 << 20, 42);
    std::fs::write(&path, &data).unwrap();
    let mut f = std::fs::File::open(&path).unwrap();
    let mut back = Vec::new();
    f.read_to_end(&mut back).unwrap();
    std::fs::remove_file(&path).unwrap();
    back
}

#[test]
fn files_carry_the_same_bytes_in_coroutines_and_threads() {
    two_workers();
    within("file io", || {
        let in_co = goro_runtime::go!(|| file_round_trip("co")).join().unwrap();
        let on_thread = std::thread::spawn(|| file_round_trip("thread"))
            .join()
            .unwrap();
        assert_eq!(in_co, pattern(1 << 20, 42));
        assert_eq!(in_co, on_thread);
    });
}

#[test]
fn pipes_pass_through() {
    two_workers();
    within("pipe", || {
        let (mut r, mut w) = std::io::pipe().unwrap();
        let data = pattern(256 << 10, 7);
        let expect = data.clone();
        let writer = std::thread::spawn(move || w.write_all(&data).unwrap());
        let got = goro_runtime::go!(move || {
            let mut v = Vec::new();
            r.read_to_end(&mut v).unwrap();
            v
        })
        .join()
        .unwrap();
        writer.join().unwrap();
        assert_eq!(got, expect);
    });
}

#[test]
fn thread_sockets_behave_as_the_kernel_says() {
    two_workers();
    within("thread sockets", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            let mut all = Vec::new();
            c.read_to_end(&mut all).unwrap();
            c.write_all(&all).unwrap();
        });
        let mut s = TcpStream::connect(addr).unwrap();
        // SAFETY: F_GETFL on our fd.
        let fl = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(fl & libc::O_NONBLOCK, 0);
        let data = pattern(1 << 20, 9);
        s.write_all(&data).unwrap();
        s.shutdown(std::net::Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        server.join().unwrap();
        assert_eq!(back, data);

        // Timeouts and the non-blocking flag on a thread: the kernel's.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut s = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let _peer = listener.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let t = Instant::now();
        assert_eq!(
            s.read(&mut [0; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        assert!(t.elapsed() >= Duration::from_millis(25));
        s.set_nonblocking(true).unwrap();
        // SAFETY: F_GETFL on our fd.
        let fl = unsafe { libc::fcntl(s.as_raw_fd(), libc::F_GETFL) };
        assert_ne!(fl & libc::O_NONBLOCK, 0);
        assert_eq!(
            s.read(&mut [0; 4]).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    });
}

#[test]
fn name_lookups_in_coroutines_give_the_threads_answer() {
    two_workers();
    within("getaddrinfo", || {
        use std::net::ToSocketAddrs;
        let on_thread: Vec<_> = ("localhost", 80).to_socket_addrs().unwrap().collect();
        let in_co: Vec<_> = goro_runtime::go!(|| ("localhost", 80)
            .to_socket_addrs()
            .unwrap()
            .collect::<Vec<_>>())
        .join()
        .unwrap();
        assert_eq!(in_co, on_thread);
        let bad = goro_runtime::go!(|| ("no-such-host.invalid", 80).to_socket_addrs().is_err())
            .join()
            .unwrap();
        assert!(bad);
    });
}

const BEGIN: &str = "<<goro-hook-begin>>";
const END: &str = "<<goro-hook-end>>";

/// The child half of `stdout_carries_the_same_bytes`: prints a pattern
/// from a coroutine and from a thread.
#[test]
fn child_prints() {
    if std::env::var_os("GORO_HOOK_CHILD").is_none() {
        return;
    }
    two_workers();
    let line = |who: &str| {
        format!(
            "{who}: {}\n",
            pattern(64, 5)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
        )
    };
    let mut out = std::io::stdout().lock();
    out.write_all(BEGIN.as_bytes()).unwrap();
    drop(out);
    let a = line("coroutine");
    goro_runtime::go!(move || {
        let mut o = std::io::stdout().lock();
        o.write_all(a.as_bytes()).unwrap();
        o.flush().unwrap();
    })
    .join()
    .unwrap();
    let b = line("thread");
    std::thread::spawn(move || {
        let mut o = std::io::stdout().lock();
        o.write_all(b.as_bytes()).unwrap();
        o.write_all(END.as_bytes()).unwrap();
        o.flush().unwrap();
    })
    .join()
    .unwrap();
}

#[test]
fn stdout_carries_the_same_bytes() {
    within("child process", || {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_prints", "--nocapture", "--test-threads=1"])
            .env("GORO_HOOK_CHILD", "1")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let text = String::from_utf8(out.stdout).unwrap();
        let body =
            &text[text.find(BEGIN).expect("begin") + BEGIN.len()..text.find(END).expect("end")];
        let hex: String = pattern(64, 5).iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(body, format!("coroutine: {hex}\nthread: {hex}\n"));
    });
}
