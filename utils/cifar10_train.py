"""Trains the CIFAR-10 tutorial network (`utils/examples/cifar10.py`) and writes checkpoints for the examples.

Run from the repository root:

    python utils/cifar10_train.py                       # downloads CIFAR-10 to /tmp/cifar10_data if needed
    python utils/cifar10_train.py --max_steps 5000 --train_dir /tmp/cifar10_train

Training follows the tutorial: batches of 128 random 24x24 crops (randomly mirrored, each standardised),
plain gradient descent from a learning rate of 0.1, divided by 10 every 350 epochs, on the cross entropy plus
weight decay of the fully connected layers. Checkpoints go to --train_dir every --save_steps steps and at the
end; a run resumes from the latest checkpoint there, so --max_steps counts from the very first step. Loss and
accuracy on the training batches are logged every --log_steps steps.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import argparse  # noqa: E402
import logging  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import progressbar  # noqa: E402

import utils.base.ctrl_c  # noqa: E402,F401 (first: Ctrl-C while TensorFlow loads ends quietly)
from utils.base.progress import progress_bar  # noqa: E402
from utils.base.quiet_tf import tf  # noqa: E402
from utils.examples import cifar10, cifar10_input  # noqa: E402
from utils.running import cli  # noqa: E402

tf1 = tf.compat.v1
logger = logging.getLogger('cifar10_train')

INITIAL_LEARNING_RATE = 0.1
EPOCHS_PER_DECAY = 350
LEARNING_RATE_DECAY = 0.1
CHECKPOINT_NAME = 'model.ckpt'


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--train_dir', default=cifar10.DEFAULT_TRAIN_DIR,
                        help='folder for the checkpoints, created if missing (default: %(default)s)')
    parser.add_argument('--data_dir', default=cifar10_input.DEFAULT_DATA_DIR,
                        help='folder of CIFAR-10 (binary version), downloaded there if missing (default: '
                             '%(default)s)')
    parser.add_argument('--max_steps', type=cli.positive_int, default=100000,
                        help='train until this many steps in all, counting resumed ones (default: %(default)s)')
    parser.add_argument('--batch_size', type=cli.positive_int, default=128,
                        help='images per step (default: %(default)s)')
    parser.add_argument('--log_steps', type=cli.positive_int, default=100,
                        help='log loss and accuracy every this many steps (default: %(default)s)')
    parser.add_argument('--save_steps', type=cli.positive_int, default=1000,
                        help='write a checkpoint every this many steps (default: %(default)s)')
    parser.add_argument('--seed', type=int, default=0, help='random seed (default: %(default)s)')
    cli.add_logging_arguments(parser, 'INFO')
    return cli.parse_args(parser, argv)


def build_training_graph(batch_size, num_examples, seed):
    """The network with its loss, accuracy and training step, in a new graph.

    Args:
        batch_size: images per step.
        num_examples: training images per epoch (for the learning-rate schedule).
        seed: graph-level random seed (initial weights).

    Returns:
        `(graph, tensors)`, `tensors` a dict with the placeholders `images` and `labels`, and `global_step`,
        `loss`, `accuracy`, `learning_rate` and `train_op`.
    """
    graph = tf.Graph()
    with graph.as_default():
        tf1.set_random_seed(seed)
        images = tf1.placeholder(tf.float32, [None, cifar10_input.CROP_SIZE, cifar10_input.CROP_SIZE, 3],
                                 name='images')
        labels = tf1.placeholder(tf.int32, [None], name='labels')
        global_step = tf1.train.get_or_create_global_step()
        logits = cifar10.inference(images)
        total_loss = cifar10.loss(logits, labels)
        accuracy = tf.reduce_mean(tf.cast(tf.equal(tf.argmax(logits, 1, output_type=tf.int32), labels),
                                          tf.float32))
        decay_steps = max(1, int(num_examples / batch_size * EPOCHS_PER_DECAY))
        learning_rate = tf1.train.exponential_decay(INITIAL_LEARNING_RATE, global_step, decay_steps,
                                                    LEARNING_RATE_DECAY, staircase=True)
        train_op = tf1.train.GradientDescentOptimizer(learning_rate).minimize(total_loss, global_step)
    return graph, dict(images=images, labels=labels, global_step=global_step, loss=total_loss,
                       accuracy=accuracy, learning_rate=learning_rate, train_op=train_op)


def train(session, tensors, batches, max_steps, train_dir, log_steps, save_steps):
    """Runs training steps until `global_step` reaches `max_steps`, saving checkpoints on the way.

    Args:
        session: a session of `build_training_graph`'s graph, its variables set.
        tensors: `build_training_graph`'s dict.
        batches: iterator of `(images, labels)` numpy batches.
        max_steps, train_dir, log_steps, save_steps: see the flags.

    Returns:
        the last step's `(loss, accuracy)`, or None if no step was run.
    """
    with session.graph.as_default():
        # Relative paths in the `checkpoint` file: the folder can be moved or copied.
        saver = tf1.train.Saver(tf1.global_variables(), max_to_keep=5, save_relative_paths=True)
    checkpoint_path = os.path.join(train_dir, CHECKPOINT_NAME)
    step = first_step = int(session.run(tensors['global_step']))
    if step >= max_steps:
        logger.info('the checkpoint in %s is already at step %d (--max_steps %d): nothing to do', train_dir,
                    step, max_steps)
        return None
    losses, accuracies, start = [], [], time.time()
    widgets = ['training ', progressbar.SimpleProgress(), ' ', progressbar.Bar(), ' ',
               progressbar.Variable('loss', precision=3), ' ', progressbar.ETA()]
    with progress_bar('', max_steps, min_value=first_step, initial_value=step, widgets=widgets,
                      variables={'loss': None}) as bar:
        while step < max_steps:
            images, labels = next(batches)
            _, loss, accuracy = session.run([tensors['train_op'], tensors['loss'], tensors['accuracy']],
                                            feed_dict={tensors['images']: images, tensors['labels']: labels})
            step += 1  # the training op has added one to global_step
            if not np.isfinite(loss):
                raise ValueError(f'the loss diverged (it is {loss}) at step {step}; the last good checkpoint is '
                                 f'in {train_dir}.')
            losses.append(loss)
            accuracies.append(accuracy)
            bar.variables['loss'] = loss  # not update(loss=...), which would redraw the bar at every step
            bar.update(step)
            if step % log_steps == 0 or step == max_steps:
                speed = len(losses) * len(labels) / (time.time() - start)
                logger.info('step %d: loss %.3f, training accuracy %.3f (mean of the last %d steps; %.0f images/s)',
                            step, np.mean(losses), np.mean(accuracies), len(losses), speed)
                losses, accuracies, start = [], [], time.time()
            if step % save_steps == 0 or step == max_steps:
                with session.graph.as_default():  # a Saver works in graph mode only
                    saver.save(session, checkpoint_path, global_step=step)
    logger.info('trained to step %d; checkpoints are in %s', step, train_dir)
    return loss, accuracy


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.train_dir, exist_ok=True)
    cifar10_input.maybe_download_and_extract(args.data_dir)
    paths = cifar10_input.find_batch_files(args.data_dir, train=True)
    graph, tensors = build_training_graph(args.batch_size, cifar10_input.count_records(paths), args.seed)
    # Iterated eagerly, outside the graph: the session is fed numpy batches.
    batches = ((images, labels) for images, labels, _ in
               cifar10_input.dataset(paths, args.batch_size, train=True, seed=args.seed).as_numpy_iterator())
    session = tf1.Session(graph=graph)
    try:
        checkpoint = cifar10.restore_checkpoint(session, args.train_dir, required=False)
        if checkpoint:
            logger.info('resuming from %s', checkpoint)
        train(session, tensors, batches, args.max_steps, args.train_dir, args.log_steps, args.save_steps)
    finally:
        session.close()
    return 0


if __name__ == '__main__':
    sys.exit(cli.run_main(main))
