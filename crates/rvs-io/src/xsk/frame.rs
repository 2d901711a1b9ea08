//! [`FrameBuf`]: a received frame lent to the callback of
//! [`XskSocket::rx_batch`], with room to prepend headers.

use super::*;

/// One received frame, lent to the callback of [`XskSocket::rx_batch`].
///
/// It gives mutable access to the whole UMEM chunk: the frame is
/// `buf[start..start + len]`, and the bytes before `start` (at least
/// [`UmemConfig::headroom`] of them) are free for prepending headers.
pub struct FrameBuf<'a> {
    pub(super) buf: &'a mut [u8],
    pub(super) start: usize,
    pub(super) len: usize,
    /// The sender's segment size of a TCP super-frame (AF_PACKET with
    /// `PACKET_VNET_HDR`), 0 for an ordinary frame.
    pub(super) gso_size: u16,
}

impl<'a> FrameBuf<'a> {
    /// A frame over caller-owned memory (for tests of code that takes a
    /// `FrameBuf`). Returns `None` if `start + len` exceeds `buf`.
    pub fn new(buf: &'a mut [u8], start: usize, len: usize) -> Option<FrameBuf<'a>> {
        (start.checked_add(len)? <= buf.len()).then_some(FrameBuf {
            buf,
            start,
            len,
            gso_size: 0,
        })
    }

    /// The same, for a super-frame the kernel says its sender cuts into
    /// segments of `gso_size` payload bytes.
    pub fn with_gso(self, gso_size: u16) -> FrameBuf<'a> {
        FrameBuf { gso_size, ..self }
    }
}

impl FrameBuf<'_> {
    /// The sender's segment size when this is a TCP (or UDP) super-frame
    /// the kernel handed over whole (a local sender's TSO, GRO), as
    /// `PACKET_VNET_HDR` reports it; 0 otherwise (always with AF_XDP).
    pub fn gso_size(&self) -> u16 {
        self.gso_size
    }

    /// The frame's bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// The frame's bytes, to rewrite in place.
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.start + self.len]
    }

    /// The whole chunk: headroom, frame, tailroom.
    pub fn buf(&self) -> &[u8] {
        self.buf
    }

    /// The whole chunk, mutable. Together with [`start`](Self::start) and
    /// [`len`](Self::len) this is the engine's `(buf, start, len)` frame.
    pub fn buf_mut(&mut self) -> &mut [u8] {
        self.buf
    }

    /// Offset of the frame in [`buf`](Self::buf): the headroom in front of it.
    pub fn start(&self) -> usize {
        self.start
    }

    /// Frame length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the frame is empty (never for a received frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room after the frame.
    pub fn tailroom(&self) -> usize {
        self.buf.len() - self.start - self.len
    }

    /// Make `buf[start..start + len]` the frame. Returns false (and changes
    /// nothing) if that range is outside the buffer.
    pub fn set_range(&mut self, start: usize, len: usize) -> bool {
        match start.checked_add(len) {
            Some(end) if end <= self.buf.len() => {
                self.start = start;
                self.len = len;
                true
            }
            _ => false,
        }
    }

    /// Grow the frame by `n` bytes at the front (encapsulation) and return
    /// them to be written; `None` if the headroom is smaller than `n`.
    pub fn push_front(&mut self, n: usize) -> Option<&mut [u8]> {
        let start = self.start.checked_sub(n)?;
        self.start = start;
        self.len += n;
        Some(&mut self.buf[start..start + n])
    }

    /// Remove `n` bytes from the front (decapsulation); false if the frame is
    /// shorter than `n`.
    pub fn pull_front(&mut self, n: usize) -> bool {
        if n > self.len {
            return false;
        }
        self.start += n;
        self.len -= n;
        true
    }

    /// The verdict that transmits the frame as it now is out of the socket it
    /// arrived on.
    pub fn tx_same(&self) -> Verdict {
        Verdict::TxSame {
            start: self.start,
            len: self.len,
        }
    }
}

impl fmt::Debug for FrameBuf<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBuf")
            .field("buf_len", &self.buf.len())
            .field("start", &self.start)
            .field("len", &self.len)
            .finish()
    }
}
