/* eventpoll/registration.c: part of eventpoll_core.c, which includes it (one
 * translation unit: these functions stay static).  Its state machine,
 * locking rules and the ordering argument of each atomic are explained at
 * the top of eventpoll_core.c.
 *
 * This file: registration: wfc_ep_add, wfc_ep_mod, wfc_ep_del.
 */

/* ------------------------------------------------------ registration */

int wfc_ep_add(wfc_ep *ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    struct wfc_item *item;
    int64_t idx, old;
    uint32_t gen;
    int err = 0;

    if (events & EPOLLEXCLUSIVE)
        return -EINVAL;
    if (atomic_load_explicit(&ep->closing, memory_order_acquire))
        return -EBADF;
    pthread_mutex_lock(&ep->ctl_lock);
    old = map_get(ep, fd);
    if (old >= 0) {
        /* Its fd may have been closed without being unregistered and the
         * number reused by the file we are adding: no owner of the old
         * item may re-arm that number (with the old tag) once the kernel
         * has the new registration. */
        wait_not_busy(ep, slot_lookup(ep, (uint32_t)old));
    }
    /* Room on the free stack first, so that freeing never fails later. */
    idx = reserve_free_stack(ep) < 0 ? -ENOMEM : alloc_slot(ep);
    if (idx < 0) {
        pthread_mutex_unlock(&ep->ctl_lock);
        return (int)idx;
    }
    item = slot_lookup(ep, (uint32_t)idx);
    /* Relaxed: the slot is FREE and ctl_lock is held; only our own last
     * store to it (or the chunk's initialisation) can be read here. */
    gen = w_gen(atomic_load_explicit(&item->word, memory_order_relaxed));
    item->fd = fd;
    item->mask = events;
    item->data = data;
    item->rearm_pending = 0;
    item->rearm_due = 0;
    item->hb_deferred = 0;
    item->out_stamp = 0;   /* a new registration was in no earlier wait's out[] */
    ev.events = arm_mask(ep, item);
    /* Release: IDLE before the kernel knows the tag, so the very first
     * event finds the item ready to be marked. */
    atomic_store_explicit(&item->word, w_make(gen, 0, ST_IDLE), memory_order_release);

    ev.data.u64 = make_tag((uint32_t)idx, gen);
    if (epoll_ctl(ep->kfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        err = errno;
        atomic_store_explicit(&item->word, w_make(gen + 1, 0, ST_FREE), memory_order_release);
        item->fd = -1;
        ep->free_stack[ep->nfree++] = (uint32_t)idx;
        pthread_mutex_unlock(&ep->ctl_lock);
        return -err;
    }
    old = map_get(ep, fd);
    if (old >= 0) {
        /* The kernel accepted fd, so the registration we still had under
         * this number was for a file that was closed since (the kernel
         * dropped it then): retire it so none of its events can reach the
         * new registration. */
        retire_item(ep, (uint32_t)old, slot_lookup(ep, (uint32_t)old));
    }
    if (map_set(ep, fd, idx) < 0) {
        epoll_ctl(ep->kfd, EPOLL_CTL_DEL, fd, NULL);
        retire_item(ep, (uint32_t)idx, item);
        pthread_mutex_unlock(&ep->ctl_lock);
        return -ENOMEM;
    }
    STAT_ADD(ep->registered, 1);
    pthread_mutex_unlock(&ep->ctl_lock);
    return 0;
}

int wfc_ep_mod(wfc_ep *ep, int fd, uint32_t events, uint64_t data)
{
    struct epoll_event ev;
    struct wfc_item *item;
    int64_t idx;
    uint32_t gen;
    bool k_oneshot;

    if (events & EPOLLEXCLUSIVE)
        return -EINVAL;
    if (atomic_load_explicit(&ep->closing, memory_order_acquire))
        return -EBADF;
    pthread_mutex_lock(&ep->ctl_lock);
    idx = map_get(ep, fd);
    if (idx < 0) {
        /* Not ours: let the kernel say why (EBADF, EPERM, EINVAL, ENOENT). */
        int r;
        ev.events = kernel_mask(ep, events);
        ev.data.u64 = TAG_PROBE;
        r = epoll_ctl(ep->kfd, EPOLL_CTL_MOD, fd, &ev);
        r = r < 0 ? -errno : 0;
        pthread_mutex_unlock(&ep->ctl_lock);
        return r;
    }
    item = slot_lookup(ep, (uint32_t)idx);
    /* A BUSY item's owner may be re-arming it with the old mask. */
    gen = w_gen(wait_not_busy(ep, item));
    ev.events = kernel_mask(ep, events);
    k_oneshot = level_triggered(events) && pollers_active(ep);
    ev.data.u64 = make_tag((uint32_t)idx, gen);
    if (epoll_ctl(ep->kfd, EPOLL_CTL_MOD, fd, &ev) < 0) {
        int err = errno;
        if (err == ENOENT || err == EBADF) {
            retire_item(ep, (uint32_t)idx, item);
            unmap_if(ep, fd, (uint32_t)idx);
        }
        pthread_mutex_unlock(&ep->ctl_lock);
        return -err;
    }
    /* The kernel item is armed with the new mask: a deferred re-arm would
     * only repeat it. */
    item->mask = events;
    item->data = data;
    item->rearm_pending = 0;
    item->rearm_due = 0;
    item->hb_deferred = 0;
    item->k_oneshot = k_oneshot;
    if (!level_triggered(events)) {
        /* Poller-side I/O is for level-triggered registrations only. */
        uint64_t w = atomic_load_explicit(&item->word, memory_order_relaxed);
        /* Relaxed: a flag with no data behind it; pollers OR bits in
         * concurrently, hence the loop. */
        while ((w & W_IO) && !atomic_compare_exchange_weak_explicit(
                   &item->word, &w, w & ~W_IO, memory_order_relaxed, memory_order_relaxed))
            ;
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return 0;
}

int wfc_ep_del(wfc_ep *ep, int fd)
{
    int64_t idx;
    int r;

    if (atomic_load_explicit(&ep->closing, memory_order_acquire))
        return -EBADF;
    pthread_mutex_lock(&ep->ctl_lock);
    r = epoll_ctl(ep->kfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
    idx = map_get(ep, fd);
    if (idx >= 0) {
        /* Whatever the kernel said, the registration is gone from it. */
        retire_item(ep, (uint32_t)idx, slot_lookup(ep, (uint32_t)idx));
        ep->fd_map[fd] = 0;
    }
    pthread_mutex_unlock(&ep->ctl_lock);
    return r;
}
