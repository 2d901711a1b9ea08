//! The UMEM's memory: page-aligned, zeroed, freed on drop (after the
//! socket that registered it, see [`XskSocket`]'s field order).

use super::*;

/// Page-aligned UMEM memory, freed on drop.
pub(super) struct UmemArea {
    pub(super) ptr: NonNull<u8>,
    layout: Layout,
}

impl UmemArea {
    pub(super) fn new(size: usize) -> Result<UmemArea, XskError> {
        // SAFETY: sysconf has no memory-safety preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let align = usize::try_from(page).unwrap_or(4096).max(4096);
        let layout = Layout::from_size_align(size, align).map_err(|_| XskError::Alloc(size))?;
        // SAFETY: the layout has a non-zero size (frames >= 64 were checked).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(ptr).ok_or(XskError::Alloc(size))?;
        Ok(UmemArea { ptr, layout })
    }

    pub(super) fn len(&self) -> usize {
        self.layout.size()
    }

    pub(super) fn as_slice_ptr(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len())
    }
}

impl Drop for UmemArea {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with exactly this layout. XskSocket
        // declares this field last, so the socket (and with it the kernel's
        // registration of this memory) is closed before we free it.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}
