//! System calls made directly, for the emulation's ready path.
//!
//! # Why not the originals
//!
//! On a socket the hook has made non-blocking underneath, the emulation
//! (`io.rs`) makes the transfer itself and waits only if the kernel says
//! `EAGAIN`. Through libc that costs, besides the system call, glibc's
//! cancellation wrapper (a multi-threaded process takes its slow side on
//! every call) and two `errno` round trips through `__errno_location`:
//! one to save the caller's value, in case the call parks and then
//! succeeds, one to test for `EAGAIN`. Here the kernel's result comes back
//! in a register as `-errno`, so the ready path touches `errno` only when
//! it reports an error, and the caller's value survives a park untouched.
//!
//! # Invariants
//!
//! 1. Only the emulation of blocking calls on sockets the hook itself made
//!    non-blocking (`GORO_NONBLOCK`) comes here. Everything the program
//!    does outside that (pass-through calls, files, pipes, fds the hook
//!    never saw, a plain thread's blocking socket) still goes to the
//!    original found by `dlsym(RTLD_NEXT)` (`real.rs`), so an interposer
//!    loaded behind goro sees those calls; it does not see the emulated
//!    transfers of coroutines, which goro owns. That is the trade for the
//!    overhead target (BENCHMARKS.md, "Hook fast path").
//! 2. Each function has the kernel's contract for its call: the count
//!    moved, or `-errno`. No `errno` is written and no signal mask or
//!    cancellation state is touched; `EINTR` comes back as it would from
//!    libc (the caller retries or reports it as before).
//! 3. `recv` and `send` are the kernel's `recvfrom` and `sendto` with no
//!    address, as glibc makes them on the architectures supported here.
//!    On an architecture without a direct implementation the functions
//!    call the originals and translate `errno`, with the same contract.

use libc::{c_int, c_void, iovec, msghdr, size_t, sockaddr, socklen_t, ssize_t};

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
mod direct {
    use libc::c_long;

    /// A six-argument system call `nr`; unused arguments are zero.
    ///
    /// # Safety
    /// The arguments must satisfy the kernel's contract for `nr`: any
    /// pointer among them valid for what that call reads or writes.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) unsafe fn syscall6(nr: c_long, a: [usize; 6]) -> isize {
        let ret: isize;
        // SAFETY: the x86_64 Linux system call ABI: number in rax,
        // arguments in rdi, rsi, rdx, r10, r8, r9, result in rax; the
        // instruction clobbers rcx and r11 and nothing else, and does not
        // touch the user stack (`nostack`). It may read and write memory
        // the arguments point at, so no memory option is claimed; the
        // caller vouches for those pointers.
        unsafe {
            std::arch::asm!(
                "syscall",
                inlateout("rax") nr as isize => ret,
                in("rdi") a[0],
                in("rsi") a[1],
                in("rdx") a[2],
                in("r10") a[3],
                in("r8") a[4],
                in("r9") a[5],
                lateout("rcx") _,
                lateout("r11") _,
                options(nostack),
            );
        }
        ret
    }

    /// As on x86_64.
    ///
    /// # Safety
    /// As on x86_64.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub(super) unsafe fn syscall6(nr: c_long, a: [usize; 6]) -> isize {
        let ret: isize;
        // SAFETY: the aarch64 Linux system call ABI: number in x8,
        // arguments in x0-x5, result in x0; `svc 0` preserves every other
        // register and does not touch the user stack. Memory as on x86_64.
        unsafe {
            std::arch::asm!(
                "svc 0",
                in("x8") nr,
                inlateout("x0") a[0] as isize => ret,
                in("x1") a[1],
                in("x2") a[2],
                in("x3") a[3],
                in("x4") a[4],
                in("x5") a[5],
                options(nostack),
            );
        }
        ret
    }
}

/// A system call's arguments, padded with zeros to six.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn args<const N: usize>(v: [usize; N]) -> [usize; 6] {
    let mut a = [0; 6];
    a[..N].copy_from_slice(&v);
    a
}

/// Defines the direct calls: on the supported architectures a system
/// call, elsewhere the original with `errno` turned into `-errno`.
macro_rules! direct_calls {
    ($(
        $(#[$m:meta])*
        fn $name:ident($($arg:ident: $ty:ty),*) = $nr:ident($($k:expr),*);
    )*) => {$(
        $(#[$m])*
        ///
        /// # Safety
        /// The arguments must satisfy the C function's contract.
        #[inline(always)]
        pub(crate) unsafe fn $name($($arg: $ty),*) -> ssize_t {
            #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
            {
                let a = args([$($k as usize),*]);
                // SAFETY: the kernel's call of the same contract as the C
                // function (invariant 3); the caller vouches for it.
                unsafe { direct::syscall6(libc::$nr, a) }
            }
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            {
                // SAFETY: the caller upholds the C function's contract.
                let r = unsafe { super::real::$name($($arg),*) };
                if r < 0 { -(super::errno() as ssize_t) } else { r }
            }
        }
    )*};
}

direct_calls! {
    /// read(2), as `-errno` or the count.
    fn read(fd: c_int, buf: *mut c_void, n: size_t) = SYS_read(fd, buf, n);
    /// readv(2).
    fn readv(fd: c_int, iov: *const iovec, cnt: c_int) = SYS_readv(fd, iov, cnt);
    /// write(2).
    fn write(fd: c_int, buf: *const c_void, n: size_t) = SYS_write(fd, buf, n);
    /// writev(2).
    fn writev(fd: c_int, iov: *const iovec, cnt: c_int) = SYS_writev(fd, iov, cnt);
    /// recv(2): recvfrom(2) with no address.
    fn recv(fd: c_int, buf: *mut c_void, n: size_t, flags: c_int)
        = SYS_recvfrom(fd, buf, n, flags, 0usize, 0usize);
    /// recvfrom(2).
    fn recvfrom(
        fd: c_int, buf: *mut c_void, n: size_t, flags: c_int,
        addr: *mut sockaddr, len: *mut socklen_t
    ) = SYS_recvfrom(fd, buf, n, flags, addr, len);
    /// recvmsg(2).
    fn recvmsg(fd: c_int, msg: *mut msghdr, flags: c_int) = SYS_recvmsg(fd, msg, flags);
    /// send(2): sendto(2) with no address.
    fn send(fd: c_int, buf: *const c_void, n: size_t, flags: c_int)
        = SYS_sendto(fd, buf, n, flags, 0usize, 0usize);
    /// sendto(2).
    fn sendto(
        fd: c_int, buf: *const c_void, n: size_t, flags: c_int,
        addr: *const sockaddr, len: socklen_t
    ) = SYS_sendto(fd, buf, n, flags, addr, len);
    /// sendmsg(2).
    fn sendmsg(fd: c_int, msg: *const msghdr, flags: c_int) = SYS_sendmsg(fd, msg, flags);
}
